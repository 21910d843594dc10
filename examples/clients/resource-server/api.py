"""A resource server (an API) that accepts op-proxy's access tokens, checked two ways:

- ``/api/me``: locally, with op-proxy's published keys (JWKS): an RFC 9068 JWT access token;
- ``/api/me/introspected``: by asking op-proxy (RFC 7662 token introspection).

    pip install -r requirements.txt
    flask --app api run --port 5100      # beside op-proxy's `make run`

Each answers who called (``sub``), through which app (``client_id``) and with which scopes, once
the token has the scope this API requires (``REQUIRED_SCOPE``) and was issued to an app it serves
(``AUDIENCES``). Every setting has a default that matches op-proxy's conf/dev.toml.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.parse
import urllib.request

from flask import Flask, jsonify, request
from jwcrypto import jwk, jwt

OP_PROXY_ISSUER = os.environ.get("OP_PROXY_ISSUER", "http://127.0.0.1:8080")
# op-proxy's access tokens name the app they were issued to as their audience (`aud` = its client_id).
AUDIENCES = set(os.environ.get("AUDIENCES", "demo").split(","))
REQUIRED_SCOPE = os.environ.get("REQUIRED_SCOPE", "email")
# Introspection only: op-proxy tells a client about its own tokens, so this API asks as that app.
INTROSPECTION_CLIENT_ID = os.environ.get("INTROSPECTION_CLIENT_ID", "demo")
INTROSPECTION_CLIENT_SECRET = os.environ.get("INTROSPECTION_CLIENT_SECRET", "demo-secret")
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]

app = Flask(__name__)


class Refused(Exception):
    """RFC 6750 §3.1: invalid_token (401) or insufficient_scope (403)."""

    def __init__(self, error: str | None, description: str, status: int = 401):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@app.errorhandler(Refused)
def refused(exc: Refused):
    if exc.error is None:  # §3.1: a request with no token at all gets the challenge without an error code
        response = jsonify(error_description=exc.description)
        response.status_code, response.headers["WWW-Authenticate"] = 401, "Bearer"
        return response
    challenge = f'Bearer error="{exc.error}", error_description="{exc.description}"'
    if exc.error == "insufficient_scope":
        challenge += f', scope="{REQUIRED_SCOPE}"'
    response = jsonify(error=exc.error, error_description=exc.description)
    response.status_code = exc.status
    response.headers["WWW-Authenticate"] = challenge
    return response


def get_json(url: str, data: dict | None = None, headers: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, body, headers or {}), timeout=10) as response:
        return json.load(response)


class Metadata:
    """op-proxy's discovery document and JWKS, fetched once, the keys again when an unknown key id
    arrives (op-proxy rotates its keys and publishes the next one ahead of use)."""

    def __init__(self):
        self._discovery: dict | None = None
        self._keys: jwk.JWKSet | None = None

    @property
    def discovery(self) -> dict:
        if self._discovery is None:
            self._discovery = get_json(OP_PROXY_ISSUER + "/.well-known/openid-configuration")
        return self._discovery

    def keys(self, kid: str | None) -> jwk.JWKSet:
        if self._keys is None or (kid and self._keys.get_key(kid) is None):
            self._keys = jwk.JWKSet.from_json(json.dumps(get_json(self.discovery["jwks_uri"])))
        return self._keys


metadata = Metadata()


def bearer_token() -> str:
    """RFC 6750 §2.1: ``Authorization: Bearer <token>``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Refused(None, "send the access token as Authorization: Bearer")
    return token.strip()


def unverified_header(token: str) -> dict:
    try:
        encoded = token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, IndexError):
        raise Refused("invalid_token", "not a JWT (an opaque access token needs introspection)") from None


def verify_locally(token: str) -> dict:
    """RFC 9068 §4: the checks a resource server makes on a JWT access token, in order."""
    header = unverified_header(token)
    # §4 (and §2.1): typ must be at+jwt. op-proxy's ID tokens carry the same iss, the same aud (the
    # client_id) and are signed with the same key: without this check, an ID token is taken for an
    # access token, and anything that saw an ID token could call this API.
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        raise Refused("invalid_token", "not an access token (typ is not at+jwt)")
    try:
        checked = jwt.JWT(jwt=token, key=metadata.keys(header.get("kid")), algs=ALGORITHMS,
                          check_claims={"iss": OP_PROXY_ISSUER, "exp": None}, expected_type="JWS")
    except Exception:  # jwcrypto raises several kinds: bad signature, expired, wrong issuer, ...
        raise Refused("invalid_token", "the access token is invalid or expired") from None
    claims = json.loads(checked.claims)
    audiences = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if not AUDIENCES.intersection(audiences):
        raise Refused("invalid_token", "the access token was issued to another application")
    return claims


def verify_by_introspection(token: str) -> dict:
    """RFC 7662: op-proxy answers whether the token is active (not expired, not revoked) and what it
    carries. One request per call, but it sees revocations at once and works for opaque tokens."""
    credentials = base64.b64encode(
        f"{urllib.parse.quote(INTROSPECTION_CLIENT_ID)}:{urllib.parse.quote(INTROSPECTION_CLIENT_SECRET)}".encode())
    answer = get_json(metadata.discovery["introspection_endpoint"],
                      {"token": token, "token_type_hint": "access_token"},
                      {"Authorization": "Basic " + credentials.decode(), "Accept": "application/json"})
    # An ID token is not active (introspection knows access and refresh tokens only), nor is a
    # refresh token used as a bearer token (it has no token_type).
    if not answer.get("active") or answer.get("token_type") != "Bearer":
        raise Refused("invalid_token", "the access token is not active")
    audiences = answer.get("aud") if isinstance(answer.get("aud"), list) else [answer.get("aud")]
    if not AUDIENCES.intersection(audiences):
        raise Refused("invalid_token", "the access token was issued to another application")
    return answer


def require_scope(claims: dict) -> None:
    if REQUIRED_SCOPE not in claims.get("scope", "").split():
        raise Refused("insufficient_scope", f"this API needs the {REQUIRED_SCOPE} scope", 403)


def whoami(claims: dict):
    return jsonify(sub=claims["sub"], client_id=claims.get("client_id"), scope=claims["scope"])


@app.get("/api/me")
def me():
    claims = verify_locally(bearer_token())
    require_scope(claims)
    return whoami(claims)


@app.get("/api/me/introspected")
def me_introspected():
    claims = verify_by_introspection(bearer_token())
    require_scope(claims)
    return whoami(claims)


@app.get("/")
def index():
    return jsonify(api=["/api/me", "/api/me/introspected"], required_scope=REQUIRED_SCOPE)
