"""One family of errors, answered in one place: an application gets JSON with the RFC error code,
its status and the headers the refusal carries (pages for people: test_database_outages.py and
test_every_page_speaks_thai_and_english.py)."""

from __future__ import annotations

from quart import Quart

from op_proxy import errors
from op_proxy.errors import PageError, Refusal, SlowDown
from op_proxy.provider.responses import register_error_handlers


async def test_an_application_gets_the_code_the_status_and_the_headers_of_its_refusal():
    app = Quart(__name__)
    register_error_handlers(app)

    @app.post("/token/refuses")
    async def refuse():
        raise SlowDown('wait "a little"\n', headers={"Retry-After": "7"})

    response = await app.test_client().post("/token/refuses")
    assert response.status_code == 429
    # RFC 6749 §5.2: no quote or control character of what was said reaches the description.
    assert await response.get_json() == {"error": "slow_down", "error_description": "wait ?a little??"}
    assert response.headers["Retry-After"] == "7"
    assert response.headers["Cache-Control"] == "no-store"


def test_each_error_code_has_one_class():
    family = [kind for kind in vars(errors).values()
              if isinstance(kind, type) and issubclass(kind, Refusal) and kind.__base__ is Refusal
              and kind is not PageError]
    codes = [kind.error for kind in family]
    assert len(codes) == len(set(codes))
    assert {"invalid_request", "invalid_client", "invalid_grant", "unsupported_grant_type", "invalid_scope",
            "invalid_token", "insufficient_scope", "login_required", "consent_required", "access_denied",
            "slow_down", "temporarily_unavailable"} <= set(codes)


async def test_an_application_whose_request_meets_a_fault_gets_server_error_as_json_whichever_way_it_came(
        tmp_path, monkeypatch, caplog):
    # The ordinary token request is answered below Quart (provider/api.py), a multipart one by Quart's
    # route: a fault in the handler reads the same to the application, and the traceback is logged.
    from op_proxy.app import create_app
    from op_proxy.config import load_settings
    from op_proxy.provider import token
    from tests.support.server import ROOT

    settings = load_settings(ROOT / "conf" / "dev.toml", environ={
        "OP_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/op-proxy.sqlite3",
        "OP_PROXY_KEYS_DIRECTORY": str(tmp_path / "keys")})
    app = create_app(settings)

    async def a_fault(*_args, **_kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(token, "authenticate_client", a_fault)
    form = {"grant_type": "refresh_token", "refresh_token": "whatever"}
    async with app.test_app():
        client = app.test_client()
        ordinary = await client.post("/token", form=form)
        as_multipart = await client.post("/token", files={}, form=form)

    for answer in (ordinary, as_multipart):
        assert answer.status_code == 500
        assert await answer.get_json() == {"error": "server_error"}
        assert answer.headers["Cache-Control"] == "no-store"
    assert [r.getMessage() for r in caplog.records if r.exc_info] == ["Exception on request POST /token"] * 2
