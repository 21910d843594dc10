"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3,
OIDC Core §9): client_secret_basic, client_secret_post, private_key_jwt and none."""

from __future__ import annotations

import base64
import binascii
import json
import time
from urllib.parse import unquote_plus

from jwcrypto import jwk, jwt
from jwcrypto.common import JWException
from sqlalchemy.exc import IntegrityError

from op_proxy.clients.registry import find_client
from op_proxy.errors import InvalidClient, OAuthError
from op_proxy.security import token_digest, verify_secret
from op_proxy.storage.models import Client, UsedJti

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS256", "PS256", "ES256"]
# RFC 7523 §3 lets us refuse an exp unreasonably far ahead. An assertion is made for one request, and
# its jti is remembered (against replay) only until its exp: a long-lived one, if it leaked, would be
# a password good for that long, and would make us keep its jti as long.
MAX_ASSERTION_LIFETIME = 600


def basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials")
    # RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


async def authenticate_client(db, form, authorization: str | None, audiences: set[str]) -> Client:
    basic = basic_credentials(authorization)
    used = [name for name, present in (
        ("client_secret_basic", basic is not None),
        ("client_secret_post", "client_secret" in form),
        ("private_key_jwt", "client_assertion" in form),
    ) if present]
    if len(used) > 1:
        raise InvalidClient("use exactly one client authentication method")
    method = used[0] if used else "none"

    if method == "client_secret_basic":
        client_id, secret = basic
        if form.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_request", "client_id does not match the authenticated client")
    elif method == "private_key_jwt":
        client_id = assertion_subject(form)
    else:
        client_id = form.get("client_id")
    client = await find_client(db, client_id)
    if client is None:
        raise InvalidClient("unknown client")
    if client.token_endpoint_auth_method != method:
        raise InvalidClient(f"this client must authenticate with {client.token_endpoint_auth_method}")

    if method == "client_secret_basic":
        ok = await verify_secret(client.secret_hash, secret)
    elif method == "client_secret_post":
        ok = await verify_secret(client.secret_hash, form["client_secret"])
    elif method == "private_key_jwt":
        ok = await verify_client_assertion(db, client, form["client_assertion"], audiences)
    else:
        ok = client.is_public
    if not ok:
        raise InvalidClient()
    return client


def assertion_subject(form) -> str:
    if form.get("client_assertion_type") != JWT_BEARER:
        raise InvalidClient("client_assertion_type must be " + JWT_BEARER)
    try:
        unverified = json.loads(jwt.JWT(jwt=form["client_assertion"]).token.objects["payload"])
    except (JWException, ValueError, KeyError, TypeError):
        raise InvalidClient("client_assertion is not a JWT") from None
    issuer = unverified.get("iss") if isinstance(unverified, dict) else None
    # RFC 7521 §4.2: a client_id sent alongside must name the client the assertion is about.
    if issuer and form.get("client_id") not in (None, issuer):
        raise InvalidClient("client_id does not match the client_assertion's issuer")
    return issuer or form.get("client_id")


async def verify_client_assertion(db, client: Client, assertion: str, audiences: set[str]) -> bool:
    """OIDC Core §9 / RFC 7523 §3: iss = sub = client_id, our endpoint or issuer in aud, an exp (required
    by ``check_claims``) soon enough, single-use jti."""
    try:
        keys = jwk.JWKSet.from_json(json.dumps(client.jwks))
        token = jwt.JWT(jwt=assertion, key=keys, algs=ASSERTION_ALGORITHMS,
                        check_claims={"iss": client.client_id, "sub": client.client_id, "exp": None})
        claims = json.loads(token.claims)
    except (JWException, ValueError, TypeError):
        return False
    aud = claims.get("aud")
    aud = [aud] if isinstance(aud, str) else aud or []
    if not audiences.intersection(aud) or not claims.get("jti"):
        return False
    if int(claims["exp"]) > time.time() + MAX_ASSERTION_LIFETIME:
        return False
    try:
        async with db.transaction() as session:
            session.add(UsedJti(jti_digest=token_digest(f"{client.client_id}:{claims['jti']}"),
                                expires_at=int(claims["exp"])))
    except IntegrityError:
        return False  # a replayed assertion
    return int(claims["exp"]) > time.time()
