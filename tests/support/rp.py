"""Relying parties for the tests: ``App``, an application's back end written out request by request
(for the stories that send what a library never would), Authlib's OAuth 2.0 client (Python) and,
through ``peers/rp.mjs``, Node's OpenID-certified ``openid-client``. Plus ``assert_error`` for the
RFC 6749 §5.2 error answers. Model: node-oidc-provider's ``test/test_helper.js``."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken
from jwcrypto import jwk
from jwcrypto import jwt as jwcrypto_jwt

from tests.support.peers import require_peer
from tests.support.person import Arrival, Person

PEERS = Path(__file__).resolve().parents[1] / "peers"
DEMO_REDIRECT = "http://127.0.0.1:5000/callback"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"  # RFC 7523 §2.2


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
    """The demo app signs the demo person in (code + PKCE); the ID token it receives."""
    person = Person(server.issuer)
    try:
        return App(server.issuer, scope="openid profile email").sign_in(person)["id_token"]
    finally:
        person.close()


# -- an application's back end, request by request ---------------------------------------------------

def s256(verifier: str) -> str:
    """RFC 7636 §4.2: the S256 code challenge of a verifier."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def without_none(fields: dict) -> dict:
    """A parameter given as None is left out of the request (a story about a missing parameter)."""
    return {name: value for name, value in fields.items() if value is not None}


@dataclass
class App:
    """A registered application: it sends a person to /authorize with its own ``state`` and PKCE
    challenge, and talks to the token, introspection and revocation endpoints itself, authenticating
    the way it was registered (``auth``: client_secret_basic, client_secret_post or none).

    Every request a story sends can be changed by name: ``exchange(code, code_verifier=None)`` leaves
    the verifier out, ``authorization_url(scope="profile")`` asks without ``openid``."""

    issuer: str
    client_id: str = "demo"
    redirect_uri: str = DEMO_REDIRECT
    secret: str | None = "demo-secret"
    auth: str = "client_secret_basic"
    scope: str = "openid"
    nonce: str | None = None
    state: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @cached_property
    def metadata(self) -> dict:
        return discovery(self.issuer)

    # the front channel: the person's browser
    def authorization_url(self, *, pkce: bool = True, **params) -> str:
        query = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                 "scope": self.scope, "state": self.state, "nonce": self.nonce}
        if pkce:
            query |= {"code_challenge": s256(self.verifier), "code_challenge_method": "S256"}
        return self.metadata["authorization_endpoint"] + "?" + urlencode(without_none(query | params))

    def code_from(self, arrival) -> str:
        """The code the person brought back to this app (RFC 6749 §4.1.2), with this app's state."""
        assert isinstance(arrival, Arrival), f"the person was left on a page of ours: {getattr(arrival, 'title', '')}"
        assert arrival.url.split("?")[0] == self.redirect_uri, arrival.url
        assert "error" not in arrival.params, arrival.params
        assert arrival.params["state"] == self.state, arrival.params
        return arrival.params["code"]

    def code_for(self, person: Person, **params) -> str:
        """The person signs in at op-proxy and comes back with a code (not redeemed yet)."""
        return self.code_from(person.sign_in(self.authorization_url(**params)))

    def assert_error_back(self, arrival, error: str) -> dict:
        """RFC 6749 §4.1.2.1: the person is back at this app with the error, the app's state and
        (RFC 9207) op-proxy's issuer, and no code. Returns what came back."""
        assert isinstance(arrival, Arrival), f"the person was left on a page of ours: {getattr(arrival, 'title', '')}"
        assert arrival.url.split("?")[0] == self.redirect_uri, arrival.url
        assert arrival.params.get("error") == error, arrival.params
        assert arrival.params["state"] == self.state, arrival.params
        assert arrival.params["iss"] == self.issuer, arrival.params
        assert "code" not in arrival.params, arrival.params
        return arrival.params

    def sign_in(self, person: Person, **params) -> dict:
        """The person signs in at op-proxy and comes back; the app redeems the code. The token response."""
        return self.tokens_for(person.sign_in(self.authorization_url(**params)))

    def tokens_for(self, arrival) -> dict:
        response = self.exchange(self.code_from(arrival))
        assert response.status_code == 200, response.text
        return response.json()

    def silent_sign_in(self, person: Person, **params) -> Arrival:
        """prompt=none: is the person still signed in at op-proxy? Back at the app either way."""
        arrival = person.visit(self.authorization_url(prompt="none", **params))
        assert isinstance(arrival, Arrival) and arrival.params["state"] == self.state, arrival
        return arrival

    def id_token_claims(self, tokens: dict) -> dict:
        return verify_id_token(self.issuer, tokens["id_token"], self.client_id)

    def through(self, base: str) -> App:
        """The same app, its back-channel requests reaching the op-proxy process at ``base`` (another
        process behind the issuer's load balancer)."""
        elsewhere = replace(self)
        elsewhere.metadata = {name: base + urlsplit(value).path if name.endswith("_endpoint") else value
                              for name, value in self.metadata.items()}
        return elsewhere

    # the back channel: the app's own requests
    def credentials(self) -> tuple[dict, tuple | None]:
        """What the app adds to a request to say who it is: form fields, and HTTP Basic credentials."""
        if self.auth == "client_secret_basic":
            return {}, (self.client_id, self.secret)
        if self.auth == "client_secret_post":
            return {"client_id": self.client_id, "client_secret": self.secret}, None
        return {"client_id": self.client_id}, None

    def post(self, endpoint: str, form: dict) -> httpx.Response:
        fields, basic = self.credentials()
        return httpx.post(self.metadata[endpoint], data=without_none({**fields, **form}), auth=basic, timeout=15)

    def token(self, form: dict) -> httpx.Response:
        return self.post("token_endpoint", form)

    def exchange(self, code: str, **form) -> httpx.Response:
        return self.token({"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                           "code_verifier": self.verifier, **form})

    def refresh(self, refresh_token: str, **form) -> httpx.Response:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token, **form})

    def introspect(self, token: str, hint: str | None = None) -> dict:
        response = self.post("introspection_endpoint", {"token": token, "token_type_hint": hint})
        assert response.status_code == 200, response.text
        return response.json()

    def revoke(self, token: str, hint: str | None = None) -> httpx.Response:
        return self.post("revocation_endpoint", {"token": token, "token_type_hint": hint})

    def userinfo(self, access_token: str) -> httpx.Response:
        return httpx.get(self.metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"},
                         timeout=15)


@dataclass(kw_only=True)
class KeyedApp(App):
    """An app that proves who it is with a JWT signed by its own private key (private_key_jwt,
    RFC 7523 §2.2), a fresh one per request."""

    key: jwk.JWK
    secret: str | None = None
    auth: str = "private_key_jwt"

    def assertion(self, *, key: jwk.JWK | None = None, jti: str | None = None, lifetime: int | None = 120) -> str:
        """Signed with ``key`` (default: the app's own), valid for ``lifetime`` seconds (None: no ``exp``)."""
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.metadata["token_endpoint"],
                  "jti": jti or secrets.token_urlsafe(16), "iat": now}
        if lifetime is not None:
            claims["exp"] = now + lifetime
        token = jwcrypto_jwt.JWT(header={"alg": "RS256", "kid": self.key.key_id, "typ": "JWT"}, claims=claims)
        token.make_signed_token(key or self.key)
        return token.serialize()

    def credentials(self) -> tuple[dict, None]:
        return {"client_id": self.client_id, "client_assertion_type": JWT_BEARER,
                "client_assertion": self.assertion()}, None


def assert_error(response: httpx.Response, error: str, *, status: int = 400,
                 description_contains: str | None = None) -> dict:
    """An RFC 6749 §5.2 error answer: the status, a JSON body naming the error, never cached, and for
    a client that failed to authenticate (401) the scheme to retry with. Returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error"] == error, body
    assert response.headers.get("Cache-Control") == "no-store", response.headers
    if status == 401:
        assert response.headers.get("WWW-Authenticate"), response.headers
    if description_contains is not None:
        assert description_contains in body.get("error_description", ""), body
    return body
