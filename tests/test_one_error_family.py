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
