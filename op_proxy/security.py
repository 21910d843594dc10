"""Secrets: random values, one-way hashes for what we store, constant-time checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_password_hasher = PasswordHasher()


def random_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def token_digest(token: str) -> str:
    """Codes, refresh tokens and session cookies are high-entropy: SHA-256 is enough to store them."""
    return hashlib.sha256(token.encode()).hexdigest()


def hash_secret(secret: str) -> str:
    """Client secrets and passwords may be chosen by people: argon2id."""
    return _password_hasher.hash(secret)


def verify_secret_sync(secret_hash: str | None, candidate: str) -> bool:
    if not secret_hash:
        return False
    try:
        return _password_hasher.verify(secret_hash, candidate)
    except (VerificationError, InvalidHashError):
        return False


async def verify_secret(secret_hash: str | None, candidate: str) -> bool:
    # argon2 costs tens of milliseconds of CPU: keep it off the event loop.
    return await asyncio.to_thread(verify_secret_sync, secret_hash, candidate)


def constant_time_equals(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def encrypt(key: bytes, text: str) -> str:
    from cryptography.fernet import Fernet

    return Fernet(key).encrypt(text.encode()).decode()


def decrypt(key: bytes, token: str) -> str:
    from cryptography.fernet import Fernet

    return Fernet(key).decrypt(token.encode()).decode()


def seal(key: bytes | None, secret: str | None) -> str | None:
    """A secret op-proxy keeps but must use in clear (an API secret it sends, an HS256 key it signs
    with, an upstream refresh token), encrypted for the database; no secret (None or empty) stays None."""
    if not secret:
        return None
    if key is None:
        raise ValueError("a secret op-proxy must use in clear needs the data key to be stored")
    return encrypt(key, secret)


def unseal(key: bytes, sealed: str | None) -> str | None:
    return decrypt(key, sealed) if sealed else None


def base64url_sha256(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def left_half_hash(value: str) -> str:
    """OIDC Core 3.1.3.6 at_hash for RS256: base64url of the left half of SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")
