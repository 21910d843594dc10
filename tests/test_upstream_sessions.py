"""op-proxy keeps an upstream session in step with its own: an app's refresh asks the upstream too,
and signing out sends the person on to the upstream's sign-out, then back to the app."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.support.peers import require_peer
from tests.support.person import Arrival, Person
from tests.support.rp import App, assert_error, verify_id_token
from tests.support.server import OpProxyServer, default_clients, free_port, write_config
from tests.support.upstream import Upstream, node_available, psu_config

PSU_SECRET = "psu-client-secret-" + "y" * 32


@pytest.fixture
def world(tmp_path):
    require_peer("Node.js", node_available() is not None,
                 "Node.js with tests/peers/node_modules (run `make peers`) is needed for the upstream")
    op_port = free_port()
    issuer = f"http://127.0.0.1:{op_port}"
    psu = Upstream(psu_config(free_port(), "op-proxy", PSU_SECRET, issuer + "/callback/psu", refresh_tokens=True,
                              post_logout_redirect_uris=[issuer + "/logout/done"]), tmp_path).start()
    config = write_config(tmp_path, port=op_port, database_url=f"sqlite+aiosqlite:///{tmp_path}/op.sqlite3",
                          clients=default_clients(), extra=f"""
[upstreams.psu]
preset = "psu"
issuer = "{psu.issuer}"
client_id = "op-proxy"
client_secret_env = "PSU_SECRET"
""")
    server = OpProxyServer(config, op_port, env={"PSU_SECRET": PSU_SECRET}).start()
    account = next(iter(psu.config["accounts"]))
    yield server, psu, Person(issuer, upstreams=(psu.base,), upstream_account=account)
    server.stop()
    psu.stop()


def signed_in_app(server, person) -> tuple[App, dict]:
    """The person signs in to the demo app through PSU Passport."""
    app = App(server.issuer, scope="openid profile email")
    return app, app.sign_in(person, idp_hint="psu")


def test_an_apps_refresh_follows_the_upstream_session(world):
    server, psu, person = world
    app, token = signed_in_app(server, person)
    refreshed = app.refresh(token["refresh_token"])
    assert refreshed.status_code == 200
    assert verify_id_token(server.issuer, refreshed.json()["id_token"], "demo")["name"] == "สมชาย ใจดี"

    psu.stop()  # the upstream is down: a temporary failure, not a sign-out
    assert_error(app.refresh(refreshed.json()["refresh_token"]), "temporarily_unavailable", status=503)

    psu.start()  # back, but it forgot every session it had (oidc-provider keeps them in memory)
    assert_error(app.refresh(refreshed.json()["refresh_token"]), "invalid_grant")
    userinfo = app.userinfo(refreshed.json()["access_token"])
    assert userinfo.status_code == 401  # the whole grant ended with the upstream session


def test_signing_out_signs_out_at_the_upstream_too_and_returns_to_the_app(world):
    server, psu, person = world
    app, token = signed_in_app(server, person)

    arrival = person.visit(server.url("/logout?" + urlencode(dict(
        id_token_hint=token["id_token"], post_logout_redirect_uri="http://127.0.0.1:5000/", state="bye"))))
    # the person confirmed at PSU's sign-out page on the way
    while not isinstance(arrival, Arrival):
        arrival = person.at_upstream(arrival)

    assert arrival.url.startswith("http://127.0.0.1:5000/?") and arrival.params["state"] == "bye"
    assert any(page.url.startswith(psu.issuer + "/session/end") for page in person.pages)
    app.assert_error_back(person.visit(app.authorization_url(prompt="none")), "login_required")


def test_a_forged_logout_continuation_goes_nowhere(world):
    server, _psu, person = world
    page = person.visit(server.url("/logout/done?state=forged"))
    assert page.title == "คุณออกจากระบบแล้ว"


def test_an_upstream_refresh_without_a_new_refresh_token_keeps_the_one_op_proxy_has(tmp_path):
    """RFC 6749 §6: an upstream may answer a refresh without issuing a new refresh token; the one
    op-proxy holds stays valid and is used next time (a connector saying "none" must not break the
    app's refresh). The upstream here is a stand-in connector: only the answer's shape matters."""
    import asyncio
    import time
    from types import SimpleNamespace

    from cryptography.fernet import Fernet

    from op_proxy.security import seal, unseal
    from op_proxy.signin.upstream_session import refresh_at_upstream
    from op_proxy.storage.database import Database
    from op_proxy.storage.models import Account, Grant, SsoSession
    from op_proxy.upstreams.base import Identity

    class UpstreamThatKeepsItsRefreshToken:
        def __init__(self):
            self.asked_with: list[str] = []

        async def refresh(self, refresh_token: str, subject: str) -> Identity:
            self.asked_with.append(refresh_token)
            return Identity("psu", subject, {"name": "สมชาย ใจดี"}, upstream_refresh_token=None)

    async def story():
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/refresh.sqlite3")
        await db.upgrade()
        key = Fernet.generate_key()
        upstream = UpstreamThatKeepsItsRefreshToken()
        svc = SimpleNamespace(db=db, connectors={"psu": upstream}, keyring=SimpleNamespace(data_key=lambda: key))
        now = int(time.time())
        async with db.transaction() as session:
            session.add(Account(sub="acct", upstream="psu", upstream_subject="psu-sub", profile={}, created_at=now,
                                updated_at=now))
            session.add(SsoSession(cookie_digest="c", sid="sid-1", sub="acct", upstream="psu", auth_time=now, amr=[],
                                   upstream_refresh_token=seal(key, "upstream-rt-1"), created_at=now,
                                   expires_at=now + 3600))
        grant = Grant(id="g", client_id="demo", sub="acct", sid="sid-1", scope="openid", auth_time=now, amr=[],
                      created_at=now)
        await refresh_at_upstream(svc, grant)
        await refresh_at_upstream(svc, grant)
        async with db.session() as session:
            kept = (await session.get(SsoSession, "c")).upstream_refresh_token
        await db.close()
        return upstream.asked_with, unseal(key, kept)

    asked_with, kept = asyncio.run(story())
    assert asked_with == ["upstream-rt-1", "upstream-rt-1"] and kept == "upstream-rt-1"
