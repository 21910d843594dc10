"""The old gateway's ``?token=``: an HS256 JWT whose ``data`` is the person as the app knows them.

HMAC is computed here with the standard library rather than a JOSE library: old gateways used
keys of any length, and a drop-in move must accept the key the apps already hold.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from op_proxy.security import random_token

# RFC 7519 §4.1.5 allows "some small leeway" for clock skew: an app server whose clock is behind
# ours (firebase/php-jwt checks nbf with no leeway by default) must not refuse a token just made.
NOT_BEFORE_LEEWAY = 60


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(*, key: str, issuer: str, client_id: str, data: dict, lifetime: int,
         now: int | None = None) -> tuple[str, str]:
    """(token, jti). Claims: iss, aud = client_id, iat, nbf (a minute before iat), exp, jti, data."""
    now = int(time.time()) if now is None else now
    jti = random_token(16)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iss": issuer, "aud": client_id, "iat": now, "nbf": now - NOT_BEFORE_LEEWAY, "exp": now + lifetime,
              "jti": jti, "data": data}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + b64url(
        json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    signature = hmac.new(key.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature), jti
