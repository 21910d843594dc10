"""Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3,
OIDC Core §9): client_secret_basic, client_secret_post, private_key_jwt and none."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections import defaultdict
from urllib.parse import unquote_plus

from jwcrypto import jwk, jwt
from jwcrypto.common import JWException
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from op_proxy.clients import throttle
from op_proxy.clients.registry import find_client
from op_proxy.errors import InvalidClient, InvalidRequest
from op_proxy.security import (
    digest_matches,
    is_secret_digest,
    remembered_argon2_match,
    secret_digest,
    token_digest,
    verify_argon2_and_remember,
)
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
    except ValueError:  # not base64 (a byte outside ASCII included), or not UTF-8 once decoded
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
            raise InvalidRequest("client_id does not match the authenticated client")
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
        await check_client_secret(db, client, secret)
    elif method == "client_secret_post":
        await check_client_secret(db, client, form["client_secret"])
    elif method == "private_key_jwt":
        await verify_client_assertion(db, client, form["client_assertion"], audiences)
    elif not client.is_public:
        raise InvalidClient()
    return client


# One argon2 check at a time per client in this process: 32 wrong secrets sent at once wait for the
# first, and find the count of failures it left (or the digest it remembered).
_argon2_turns: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


async def check_client_secret(db, client: Client, candidate: str) -> None:
    """A wrong secret never costs more than the right one: a digest is one SHA-256 either way; an
    argon2 hash (a secret people chose) costs argon2 once per process, then a SHA-256, and while
    wrong secrets keep coming for the client, nothing (429 before any hashing)."""
    stored = client.secret_hash
    if is_secret_digest(stored):
        if digest_matches(stored, candidate):
            return  # even while throttled: a 256-bit secret cannot be guessed, the app keeps working
        await refuse(db, client, await throttle.failures_of(db, client.client_id))
    if not stored:
        raise InvalidClient()
    failures = await throttle.failures_of(db, client.client_id)
    if failures.over_limit:
        raise throttle.TooManyFailures(failures)
    matches = remembered_argon2_match(stored, candidate)
    if matches is None:
        async with _argon2_turns[client.client_id]:
            matches = remembered_argon2_match(stored, candidate)
            if matches is None:
                failures = await throttle.failures_of(db, client.client_id)  # others failed while we waited
                if failures.over_limit:
                    raise throttle.TooManyFailures(failures)
                matches = await verify_argon2_and_remember(stored, candidate)
    if not matches:
        await refuse(db, client, failures)
    if failures.count:
        await throttle.forget_failures(db, client.client_id)
    if client.source == "database":
        await upgrade_to_digest(db, client, candidate)


async def refuse(db, client: Client, failures: throttle.Failures):
    """401 while the client's wrong secrets are counted; 429 once there are too many (then no longer
    counted: a flood of guesses reads the database, it does not write to it)."""
    if not failures.over_limit:
        failures = await throttle.count_failure(db, client.client_id)
        if failures.count <= throttle.FAILURE_LIMIT:  # more: others counted at the same instant
            raise InvalidClient()
    raise throttle.TooManyFailures(failures)


async def upgrade_to_digest(db, client: Client, secret: str) -> None:
    """An argon2 hash stored by an older op-proxy hides a secret op-proxy generated (256 bits): now
    that it is known to be right, it is stored as its digest, the form checked without argon2.
    Config clients are not upgraded: the config file says what their hash is."""
    async with db.transaction() as session:
        await session.execute(update(Client).where(Client.client_id == client.client_id,
                                                   Client.secret_hash == client.secret_hash)
                              .values(secret_hash=secret_digest(secret))
                              .execution_options(synchronize_session=False))


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


async def verify_client_assertion(db, client: Client, assertion: str, audiences: set[str]) -> None:
    """OIDC Core §9 / RFC 7523 §3: signed with one of the client's keys, iss = sub = client_id, our
    endpoint or issuer in aud, an exp soon enough, a single-use jti. A refusal says which rule failed,
    so the app's developer can fix their assertion."""
    try:
        keys = jwk.JWKSet.from_json(json.dumps(client.jwks))
    except (JWException, ValueError, TypeError):
        raise InvalidClient("this client has no usable public keys (jwks)") from None
    try:
        token = jwt.JWT(jwt=assertion, key=keys, algs=ASSERTION_ALGORITHMS, check_claims=False)
        claims = json.loads(token.claims)
    except (JWException, ValueError, TypeError):  # a kid of none of its keys included
        raise InvalidClient("client_assertion: its signature does not verify with this client's registered keys "
                            f"(jwks; alg one of {', '.join(ASSERTION_ALGORITHMS)})") from None
    if not isinstance(claims, dict):
        raise InvalidClient("client_assertion: the payload is not a JSON object")
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("client_assertion: iss and sub must both be the client_id")
    aud = claims.get("aud")
    aud = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not audiences.intersection(a for a in aud if isinstance(a, str)):
        raise InvalidClient("client_assertion: aud must be the token endpoint or the issuer")
    if not claims.get("jti") or not isinstance(claims["jti"], str):
        raise InvalidClient("client_assertion: jti is required (it makes the assertion single-use)")
    exp, now = claims.get("exp"), time.time()
    if not is_numeric_date(exp):
        raise InvalidClient("client_assertion: exp is required")
    if exp <= now:
        raise InvalidClient("client_assertion: it has expired (exp)")
    if exp > now + MAX_ASSERTION_LIFETIME:
        # Authlib's default assertion lives an hour: the most common refusal, so say it plainly.
        limit = MAX_ASSERTION_LIFETIME
        raise InvalidClient(f"client_assertion: it lives longer than {limit // 60} minutes "
                            f"(exp is {int(exp) - int(now)} s from now; make exp - iat at most {limit})")
    if is_numeric_date(claims.get("nbf")) and claims["nbf"] > now + NOT_BEFORE_LEEWAY:
        raise InvalidClient("client_assertion: it is not valid yet (nbf)")
    try:
        async with db.transaction() as session:
            session.add(UsedJti(jti_digest=token_digest(f"{client.client_id}:{claims['jti']}"),
                                expires_at=math.ceil(exp)))
    except IntegrityError:
        raise InvalidClient("client_assertion: it was used before (jti)") from None


NOT_BEFORE_LEEWAY = 60  # clocks of the client's machine and ours may differ by this much


def is_numeric_date(value) -> bool:
    """RFC 7519 §2: a number of seconds (JSON allows fractions, never NaN)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
