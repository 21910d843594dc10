"""Whatever happens, op-proxy's log never holds a secret, a token, a password or a national ID."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from tests.support.person import Person
from tests.support.rp import App
from tests.support.server import DEMO_PROFILE, DEMO_SECRET_HASH, default_clients

THAID_APP = {"client_id": "thaid-app", "name": "Allowed the national ID", "client_secret_hash": DEMO_SECRET_HASH,
             "allowed_scopes": ["openid", "profile", "thaid"], "redirect_uris": ["http://127.0.0.1:5010/callback"]}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_full_day_of_sign_ins_leaves_no_secret_in_the_log(make_server, log_format):
    server = make_server(clients=default_clients() + [THAID_APP], extra=f'[logging]\nformat = "{log_format}"\n')
    app = App(server.issuer, "thaid-app", "http://127.0.0.1:5010/callback", scope="openid profile thaid",
              nonce="nonce-log")
    person = Person(server.issuer)
    wrong = person.visit(app.authorization_url())
    person.submit_password(wrong, password="not-the-password")  # a failed attempt is logged too
    arrival = person.sign_in(app.authorization_url())
    token = app.tokens_for(arrival)
    claims = app.id_token_claims(token)
    assert claims["pid"] == DEMO_PROFILE["pid"]  # this client may see it ... but the log may not
    assert app.refresh(token["refresh_token"]).status_code == 200
    replace(app, secret="wrong-secret").exchange(arrival.params["code"])
    app.exchange(arrival.params["code"])  # a replay, refused and audited
    httpx.get(server.url("/logout"), params={"id_token_hint": token["id_token"]})
    server.stop()

    log = server.log()
    assert "audit event=sign_in outcome=failure" in log and "audit event=tokens_issued" in log
    for secret in (DEMO_PROFILE["pid"], "demo-secret", "wrong-secret", "not-the-password", arrival.params["code"],
                   token["access_token"], token["refresh_token"], token["id_token"], "nonce-log", app.verifier):
        assert secret not in log
