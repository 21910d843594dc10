"""Secrets: random values, one-way hashes for what we store, constant-time checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
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
    """Passwords, and client secrets people chose (the config's ``client_secret_env``): argon2id."""
    return _password_hasher.hash(secret)


def verify_secret_sync(secret_hash: str | None, candidate: str) -> bool:
    if not secret_hash:
        return False
    try:
        return _password_hasher.verify(secret_hash, candidate)
    except (VerificationError, InvalidHashError):
        return False


async def verify_secret(secret_hash: str | None, candidate: str) -> bool:
    """A password (admins, local users): argon2 costs tens of milliseconds of CPU, off the event loop."""
    return await asyncio.to_thread(verify_secret_sync, secret_hash, candidate)


# A client secret op-proxy generates has 256 bits of randomness. A slow KDF slows the guessing of
# low-entropy passwords; nobody guesses 2^256, so such a secret is stored as its SHA-256, in a form
# that says so: ``sha256$<64 hex>`` (an argon2 hash says ``$argon2id$...``). Checking one costs a
# microsecond instead of argon2's ~100 ms of CPU on every /token, /introspect and /revoke call.
SECRET_DIGEST_PREFIX = "sha256$"


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # whatever a form decoded to, never an exception


def secret_digest(secret: str) -> str:
    return SECRET_DIGEST_PREFIX + hashlib.sha256(_utf8(secret)).hexdigest()


_SECRET_DIGEST = re.compile(re.escape(SECRET_DIGEST_PREFIX) + "[0-9a-f]{64}")


def is_secret_digest(stored: str | None) -> bool:
    return bool(stored) and _SECRET_DIGEST.fullmatch(stored) is not None


def is_argon2_hash(stored: str | None) -> bool:
    return bool(stored) and stored.startswith("$argon2")


def digest_matches(stored_digest: str, candidate: str) -> bool:
    """Constant time: how much of the digest matched is not told by how long the answer took."""
    return hmac.compare_digest(stored_digest.encode("ascii"), secret_digest(candidate).encode("ascii"))


# An argon2 hash this process has verified once, with the SHA-256 of the secret that matched it: the
# right secret then costs a SHA-256, and so does a wrong one (it differs from the remembered digest,
# and argon2 would only confirm that). Keyed by the hash string, so a changed secret is never matched
# against a stale entry. Bounded: hashes only come from the config and the clients table.
_VERIFIED_ARGON2_LIMIT = 1024
_verified_argon2: dict[str, bytes] = {}


def remembered_argon2_match(secret_hash: str, candidate: str) -> bool | None:
    """True or False when this process has verified ``secret_hash`` before; None when only argon2
    can tell."""
    remembered = _verified_argon2.get(secret_hash)
    if remembered is None:
        return None
    return hmac.compare_digest(remembered, hashlib.sha256(_utf8(candidate)).digest())


def _argon2_verifies(secret_hash: str, candidate: str) -> bool:
    try:
        return _password_hasher.verify(secret_hash, _utf8(candidate))
    except (VerificationError, InvalidHashError):
        return False


async def verify_argon2_and_remember(secret_hash: str, candidate: str) -> bool:
    if not await asyncio.to_thread(_argon2_verifies, secret_hash, candidate):
        return False
    # Back on the event loop: one writer, no lock.
    if len(_verified_argon2) >= _VERIFIED_ARGON2_LIMIT:
        _verified_argon2.pop(next(iter(_verified_argon2)))
    _verified_argon2[secret_hash] = hashlib.sha256(_utf8(candidate)).digest()
    return True


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
