"""Whatever happens, op-proxy's log never holds a secret, a token, a password or a national ID."""

from __future__ import annotations

import httpx
import pytest

from tests.support.person import Person
from tests.support.rp import authlib_client, verify_id_token
from tests.support.server import DEMO_PROFILE, DEMO_SECRET_HASH, default_clients

THAID_APP = {"client_id": "thaid-app", "name": "Allowed the national ID", "client_secret_hash": DEMO_SECRET_HASH,
             "allowed_scopes": ["openid", "profile", "thaid"], "redirect_uris": ["http://127.0.0.1:5010/callback"]}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_full_day_of_sign_ins_leaves_no_secret_in_the_log(make_server, log_format):
    server = make_server(clients=default_clients() + [THAID_APP], extra=f'[logging]\nformat = "{log_format}"\n')
    app = authlib_client(server.issuer, "thaid-app", "demo-secret", "http://127.0.0.1:5010/callback",
                         scope="openid profile thaid")
    url, _ = app.create_authorization_url(server.url("/authorize"), code_verifier="p" * 43, nonce="nonce-log")
    person = Person(server.issuer)
    wrong = person.visit(url)
    person.submit_password(wrong, password="not-the-password")  # a failed attempt is logged too
    arrival = person.sign_in(url)
    token = app.fetch_token(server.url("/token"), authorization_response=arrival.url, code_verifier="p" * 43)
    claims = verify_id_token(server.issuer, token["id_token"], "thaid-app")
    assert claims["pid"] == DEMO_PROFILE["pid"]  # this client may see it ... but the log may not
    app.refresh_token(server.url("/token"))
    httpx.post(server.url("/token"), auth=("thaid-app", "wrong-secret"),
               data={"grant_type": "authorization_code", "code": arrival.params["code"]})
    httpx.post(server.url("/token"), auth=("thaid-app", "demo-secret"),  # a replay, refused and audited
               data={"grant_type": "authorization_code", "code": arrival.params["code"],
                     "redirect_uri": "http://127.0.0.1:5010/callback", "code_verifier": "p" * 43})
    httpx.get(server.url("/logout"), params={"id_token_hint": token["id_token"]})
    server.stop()

    log = server.log()
    assert "audit event=sign_in outcome=failure" in log and "audit event=tokens_issued" in log
    for secret in (DEMO_PROFILE["pid"], "demo-secret", "wrong-secret", "not-the-password", arrival.params["code"],
                   token["access_token"], token["refresh_token"], token["id_token"], "nonce-log"):
        assert secret not in log
