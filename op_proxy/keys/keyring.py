"""The keyring: signing keys kept as one JSON file each under ``keys/``.

A key's life is derived from two times and never stored as a status:
- published from ``created_at`` (it is in the JWKS at once),
- signs from ``signs_from`` (``publish_ahead`` later, so every cached JWKS already holds it),
- retired when a newer key starts signing, and still published until every token it signed has
  expired (``retired_at + max_token_lifetime``); after that its file is removed.
Every process reads the same directory, and notices a rotation at once by the directory's
modification time (one ``stat`` per use; the files are listed again only when it changed).

Tokens are signed and verified with ``cryptography`` key objects prepared once per key (RS256,
RFC 7515 §5 and RFC 7518 §3.3), not re-parsed per signature.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from jwcrypto import jwk, jwt

from op_proxy.security import random_token

# A directory changed this recently may change again within the file system's timestamp
# granularity (a few milliseconds): list it again rather than trust an equal mtime.
MTIME_SETTLE_NS = 1_000_000_000


def b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def b64url_decode(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: int
    signs_from: int
    jwk: jwk.JWK
    created_ns: int = 0  # orders keys made within the same second
    _headers: dict = field(default_factory=dict, compare=False, repr=False)

    def public_jwk(self, algorithm: str) -> dict:
        public = self.jwk.export_public(as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": algorithm}

    @cached_property
    def private_key(self):
        return self.jwk.get_op_key("sign")

    @cached_property
    def public_key(self):
        return self.jwk.get_op_key("verify")

    def encoded_header(self, algorithm: str, typ: str) -> bytes:
        """The protected header, serialized once per (key, typ)."""
        header = self._headers.get(typ)
        if header is None:
            header = self._headers[typ] = b64url(orjson.dumps({"alg": algorithm, "kid": self.kid, "typ": typ}))
        return header


@dataclass(frozen=True)
class KeyState:
    key: SigningKey
    status: str  # "next", "signing" or "retired"
    retired_at: int | None
    published_until: int | None


class NoSigningKey(RuntimeError):
    pass


class Keyring:
    def __init__(self, directory: str | os.PathLike, *, algorithm: str = "RS256", rsa_bits: int = 2048,
                 publish_ahead: int = 3600, max_token_lifetime: int = 3600):
        self.directory = Path(directory)
        self.algorithm = algorithm
        self.rsa_bits = rsa_bits
        self.publish_ahead = publish_ahead
        self.max_token_lifetime = max_token_lifetime
        self._keys: list[SigningKey] = []
        self._loaded_names: list[tuple[str, int]] | None = None
        self._seen_mtime_ns: int | None = None
        self._secrets: dict[str, bytes] = {}
        self._jwks_cache: tuple | None = None  # (keys, valid until, published keys, JWKS bytes)
        # Tokens whose signature was checked: token -> (kid, header, claims). See ``verify``.
        self._verified: dict[str, tuple[str, dict, dict]] = {}

    # -- reading -------------------------------------------------------------------------------

    def keys(self) -> list[SigningKey]:
        """All keys on disk, oldest first. Adding or removing a key file changes the directory's
        mtime, so one ``stat`` tells whether another process rotated; files are re-read only when
        a file or its modification time changed (a key file is written whole and renamed into place;
        only ``promote_next`` rewrites one)."""
        try:
            mtime_ns = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            mtime_ns = None
        if mtime_ns is not None and mtime_ns == self._seen_mtime_ns \
                and time.time_ns() - mtime_ns > MTIME_SETTLE_NS:
            return self._keys
        self._seen_mtime_ns = mtime_ns
        # Names and modification times: ``promote_next`` rewrites a file in place.
        names = sorted(_name_and_version(path) for path in self.directory.glob("*.jwk.json"))
        if names != self._loaded_names:
            loaded = (self._read(self.directory / name) for name, _version in names)
            self._keys = sorted((key for key in loaded if key is not None),
                                key=lambda k: (k.signs_from, k.created_ns, k.kid))
            self._loaded_names = names
        return self._keys

    @staticmethod
    def _read(path: Path) -> SigningKey | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:  # pruned by another process while we listed the directory
            return None
        return SigningKey(data["kid"], data["created_at"], data["signs_from"],
                          jwk.JWK(**data["private_jwk"]), data.get("created_ns", 0))

    def states(self, now: int | None = None) -> list[KeyState]:
        now = int(time.time()) if now is None else now
        keys = self.keys()
        signing = self._signing(keys, now)
        states = []
        for index, key in enumerate(keys):
            if key.signs_from > now:
                states.append(KeyState(key, "next", None, None))
            elif key is signing:
                states.append(KeyState(key, "signing", None, None))
            else:
                successor = next(k for k in keys[index + 1:] if k.signs_from <= now)
                retired_at = successor.signs_from
                states.append(KeyState(key, "retired", retired_at, retired_at + self.max_token_lifetime))
        return states

    @staticmethod
    def _signing(keys: list[SigningKey], now: int) -> SigningKey | None:
        active = [k for k in keys if k.signs_from <= now]
        return active[-1] if active else None

    def signing_key(self, now: int | None = None) -> SigningKey:
        key = self._signing(self.keys(), int(time.time()) if now is None else now)
        if key is None:
            raise NoSigningKey(f"no signing key in {self.directory}; run `op-proxy init`")
        return key

    def published(self, now: int | None = None) -> list[SigningKey]:
        now = int(time.time()) if now is None else now
        return [s.key for s in self.states(now) if s.published_until is None or s.published_until > now]

    def jwks(self) -> dict:
        return {"keys": [key.public_jwk(self.algorithm) for key in reversed(self.published())]}

    def _published_now(self) -> tuple[list[SigningKey], bytes]:
        """The published keys and their JWKS document, worked out again only when a key file
        appears or goes, or when the clock passes the next moment a key starts signing or is
        withdrawn (what ``states`` would say is the same until then)."""
        now = time.time()
        keys = self.keys()
        cached = self._jwks_cache
        if cached is not None and cached[0] is keys and now < cached[1]:
            return cached[2], cached[3]
        whole_second = int(now)
        published = self.published(whole_second)
        moments = [k.signs_from for k in keys if k.signs_from > whole_second]
        moments += [s.published_until for s in self.states(whole_second)
                    if s.published_until is not None and s.published_until > whole_second]
        until = min(moments, default=whole_second + 60)
        body = orjson.dumps({"keys": [key.public_jwk(self.algorithm) for key in reversed(published)]})
        self._jwks_cache = (keys, until, published, body)
        return published, body

    def jwks_bytes(self) -> bytes:
        """The JWKS document, serialized again only when the published keys change."""
        return self._published_now()[1]

    # -- writing -------------------------------------------------------------------------------

    def ensure_signing_key(self) -> SigningKey:
        """First start: a key that signs at once (nobody can have cached a JWKS yet)."""
        try:
            return self.signing_key()
        except NoSigningKey:
            now = int(time.time())
            return self._create(signs_from=now)

    def promote_next(self, now: int | None = None) -> SigningKey | None:
        """Retire now: the already published next key signs from now (every cached JWKS has it), rather
        than a new key nobody has seen; None when no key is waiting."""
        now = int(time.time()) if now is None else now
        waiting = [key for key in self.keys() if key.signs_from > now]
        if not waiting:
            return None
        path = self.directory / f"{waiting[0].kid}.jwk.json"
        record = json.loads(path.read_text())
        record["signs_from"] = now
        temporary = path.with_suffix(f".{random_token(6)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(temporary, path)  # rewritten whole; keys() sees the new modification time
        self.prune(now)
        return next(key for key in self.keys() if key.kid == waiting[0].kid)

    def rotate(self, *, immediately: bool = False) -> SigningKey:
        """Publish a new key now; it signs after ``publish_ahead`` (or at once, in an emergency)."""
        now = int(time.time())
        key = self._create(signs_from=now if immediately else now + self.publish_ahead)
        self.prune(now)
        return key

    def prune(self, now: int | None = None) -> list[str]:
        now = int(time.time()) if now is None else now
        removed = []
        for state in self.states(now):
            if state.published_until is not None and state.published_until <= now:
                (self.directory / f"{state.key.kid}.jwk.json").unlink(missing_ok=True)
                removed.append(state.key.kid)
        return removed

    def _make_directory(self) -> None:
        # Private keys and secrets: only op-proxy's own user may list or enter the directory
        # (its files are 0600 too). An existing directory keeps the mode its owner chose.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _create(self, *, signs_from: int) -> SigningKey:
        self._make_directory()
        created_ns = time.time_ns()
        now = created_ns // 1_000_000_000
        kid = time.strftime("%Y%m%d", time.gmtime(now)) + "-" + random_token(6)
        private = jwk.JWK.generate(kty="RSA", size=self.rsa_bits)
        record = {"kid": kid, "created_at": now, "created_ns": created_ns, "signs_from": signs_from,
                  "private_jwk": private.export_private(as_dict=True)}
        path = self.directory / f"{kid}.jwk.json"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle)
        os.replace(temporary, path)  # other processes never see half a key
        return SigningKey(kid, now, signs_from, private, created_ns)

    def subject_salt(self) -> bytes:
        """For pairwise subjects (OIDC Core §8.1)."""
        return self._shared_secret("pairwise-subject.salt", lambda: random_token(32).encode())

    def data_key(self) -> bytes:
        """A Fernet key for what we keep but must not store in clear (upstream refresh tokens)."""
        from cryptography.fernet import Fernet

        return self._shared_secret("data-encryption.key", Fernet.generate_key)

    def _shared_secret(self, name: str, make) -> bytes:
        """A secret file beside the keys: made once, by whichever process comes first, then shared."""
        if name in self._secrets:
            return self._secrets[name]
        path = self.directory / name
        if not path.exists():
            self._make_directory()
            temporary = path.with_suffix(f".{random_token(6)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(make())
            try:
                os.link(temporary, path)  # atomic: the first process wins, the others read its secret
            except FileExistsError:
                pass
            temporary.unlink()
        self._secrets[name] = path.read_bytes()
        return self._secrets[name]

    # -- using -----------------------------------------------------------------------------------

    def sign(self, claims: dict, *, typ: str = "JWT", key: SigningKey | None = None) -> str:
        """A compact JWS (RFC 7515 §7.1), RS256 (RFC 7518 §3.3: RSASSA-PKCS1-v1_5 with SHA-256), with
        ``key`` (the signing key of the moment if not given)."""
        key = key or self.signing_key()
        signing_input = key.encoded_header(self.algorithm, typ) + b"." + b64url(orjson.dumps(claims))
        signature = key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return (signing_input + b"." + b64url(signature)).decode("ascii")

    # A resource server introspects, or an application asks userinfo with, the same access token
    # many times: its signature is checked once per process. A remembered token is still refused
    # as soon as its key is no longer published (an emergency withdrawal); its claims (exp) and
    # revocation are the caller's to check on every use. Only tokens we signed get in, and the
    # oldest is forgotten first.
    VERIFIED_TOKENS_KEPT = 4096

    def verify(self, token: str) -> tuple[dict, dict]:
        """Signature check only (callers check the claims): returns (header, claims)."""
        if (known := self._verified.get(token)) is not None:
            kid, header, claims = known
            if any(k.kid == kid for k in self._published_now()[0]):
                return dict(header), dict(claims)
            del self._verified[token]
            raise InvalidToken("unknown key")
        header, claims = self._verify_signature(token)
        if len(self._verified) >= self.VERIFIED_TOKENS_KEPT:
            self._verified.pop(next(iter(self._verified), None), None)
        self._verified[token] = (header["kid"], header, claims)
        return dict(header), dict(claims)

    def _verify_signature(self, token: str) -> tuple[dict, dict]:
        try:
            encoded_header, encoded_payload, encoded_signature = token.split(".")
            header = orjson.loads(b64url_decode(encoded_header))
            if not isinstance(header, dict) or header.get("alg") != self.algorithm:
                raise InvalidToken("unexpected algorithm")
            if "crit" in header:  # RFC 7515 §4.1.11: we understand no extension
                raise InvalidToken("unsupported critical header")
            key = next((k for k in self._published_now()[0] if k.kid == header.get("kid")), None)
            if key is None:
                raise InvalidToken("unknown key")
            key.public_key.verify(b64url_decode(encoded_signature),
                                  f"{encoded_header}.{encoded_payload}".encode("ascii"),
                                  padding.PKCS1v15(), hashes.SHA256())
            claims = orjson.loads(b64url_decode(encoded_payload))
        except InvalidToken:
            raise
        except (InvalidSignature, ValueError, TypeError, binascii.Error, UnicodeEncodeError) as exc:
            raise InvalidToken(type(exc).__name__) from None
        if not isinstance(claims, dict):
            raise InvalidToken("the payload is not a JSON object")
        return header, claims


class InvalidToken(Exception):
    pass


__all__ = ["Keyring", "SigningKey", "KeyState", "InvalidToken", "NoSigningKey", "jwt"]


def _name_and_version(path: Path) -> tuple[str, int]:
    try:
        return path.name, path.stat().st_mtime_ns
    except FileNotFoundError:  # pruned by another process while we listed the directory
        return path.name, 0
