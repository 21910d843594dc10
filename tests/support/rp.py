"""Relying parties for the tests: Authlib's OAuth 2.0 client (Python) and, through ``peers/rp.mjs``,
Node's OpenID-certified ``openid-client``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from tests.support.peers import require_peer
from tests.support.person import Arrival, Person

PEERS = Path(__file__).resolve().parents[1] / "peers"
DEMO_REDIRECT = "http://127.0.0.1:5000/callback"


def discovery(issuer: str) -> dict:
    return httpx.get(issuer + "/.well-known/openid-configuration").json()


def verify_id_token(issuer: str, id_token: str, client_id: str, nonce: str | None = None,
                    access_token: str | None = None) -> dict:
    """Verify an ID token as an RP would: signature with the published JWKS, then the claims."""
    metadata = discovery(issuer)
    keys = JsonWebKey.import_key_set(httpx.get(metadata["jwks_uri"]).json())
    claims = jwt.decode(id_token, keys, claims_cls=CodeIDToken, claims_options={
        "iss": {"essential": True, "value": issuer}, "aud": {"essential": True, "value": client_id},
    }, claims_params={"nonce": nonce, "client_id": client_id, "access_token": access_token})
    claims.validate(leeway=5)
    return dict(claims)


def authlib_client(issuer: str, client_id: str, client_secret: str | None, redirect_uri: str,
                   scope: str = "openid profile email", auth_method: str = "client_secret_basic") -> OAuth2Client:
    return OAuth2Client(client_id=client_id, client_secret=client_secret, scope=scope,
                        redirect_uri=redirect_uri, token_endpoint_auth_method=auth_method,
                        code_challenge_method="S256")


def node_available() -> str | None:
    node = shutil.which("node")
    return node if node and (PEERS / "node_modules" / "openid-client").exists() else None


def require_node(needed_for: str) -> str:
    """The ``node`` binary with tests/peers/node_modules installed, or a skip (a failure under CI=true)."""
    node = node_available()
    require_peer("Node.js", node is not None, f"Node.js with tests/peers/node_modules (run `make peers`) is needed "
                                              f"for {needed_for}")
    return node


def openid_client(command: str, **options) -> dict:
    """Run ``node peers/rp.mjs <command>`` and return its JSON answer (raises on failure)."""
    args = [node_available() or "node", str(PEERS / "rp.mjs"), command]
    for name, value in options.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            args += ["--" + name.replace("_", "-"), item]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    answer = json.loads(result.stdout or "{}")
    if result.returncode != 0:
        raise OpenIdClientError(answer.get("error"), answer.get("error_description"), result.stderr)
    return answer


class OpenIdClientError(Exception):
    def __init__(self, error, description, stderr):
        super().__init__(f"{error}: {description}\n{stderr}")
        self.error, self.description = error, description


def demo_id_token(server) -> str:
    """The demo app signs the demo person in (Authlib, code + PKCE); the ID token it receives."""
    metadata = discovery(server.issuer)
    app = authlib_client(server.issuer, "demo", "demo-secret", DEMO_REDIRECT)
    verifier = os.urandom(32).hex()
    url, _ = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
    person = Person(server.issuer)
    try:
        arrival = person.sign_in(url)
    finally:
        person.close()
    assert isinstance(arrival, Arrival), arrival
    return app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url,
                           code_verifier=verifier)["id_token"]
