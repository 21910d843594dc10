"""The keyring: signing keys kept as one JSON file each under ``keys/``.

A key's life is derived from two times and never stored as a status:
- published from ``created_at`` (it is in the JWKS at once),
- signs from ``signs_from`` (``publish_ahead`` later, so every cached JWKS already holds it),
- retired when a newer key starts signing, and still published until every token it signed has
  expired (``retired_at + max_token_lifetime``); after that its file is removed.
Every process reads the same directory, and notices a rotation by the list of key files in it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from jwcrypto import jwk, jws, jwt
from jwcrypto.common import JWException, json_encode

from op_proxy.security import random_token


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created_at: int
    signs_from: int
    jwk: jwk.JWK
    created_ns: int = 0  # orders keys made within the same second

    def public_jwk(self, algorithm: str) -> dict:
        public = self.jwk.export_public(as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": algorithm}


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
        self._loaded_names: list[str] | None = None
        self._secrets: dict[str, bytes] = {}

    # -- reading -------------------------------------------------------------------------------

    def keys(self) -> list[SigningKey]:
        """All keys on disk, oldest first; files are re-read only when the set of files changed
        (a key file is written whole and renamed into place, and never changed afterwards)."""
        names = sorted(path.name for path in self.directory.glob("*.jwk.json"))
        if names != self._loaded_names:
            loaded = (self._read(self.directory / name) for name in names)
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

    # -- writing -------------------------------------------------------------------------------

    def ensure_signing_key(self) -> SigningKey:
        """First start: a key that signs at once (nobody can have cached a JWKS yet)."""
        try:
            return self.signing_key()
        except NoSigningKey:
            now = int(time.time())
            return self._create(signs_from=now)

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

    def _create(self, *, signs_from: int) -> SigningKey:
        self.directory.mkdir(parents=True, exist_ok=True)
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
            self.directory.mkdir(parents=True, exist_ok=True)
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

    def sign(self, claims: dict, *, typ: str = "JWT") -> str:
        key = self.signing_key()
        header = {"alg": self.algorithm, "kid": key.kid, "typ": typ}
        token = jws.JWS(json_encode(claims).encode())
        token.add_signature(key.jwk, alg=self.algorithm, protected=json_encode(header))
        return token.serialize(compact=True)

    def verify(self, token: str) -> tuple[dict, dict]:
        """Signature check only (callers check the claims): returns (header, claims)."""
        try:
            parsed = jws.JWS()
            parsed.deserialize(token)
            header = parsed.jose_header
            if header.get("alg") != self.algorithm:
                raise InvalidToken("unexpected algorithm")
            key = next((k for k in self.published() if k.kid == header.get("kid")), None)
            if key is None:
                raise InvalidToken("unknown key")
            parsed.verify(key.jwk, alg=self.algorithm)
            return header, json.loads(parsed.payload)
        except (JWException, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from None


class InvalidToken(Exception):
    pass


__all__ = ["Keyring", "SigningKey", "KeyState", "InvalidToken", "NoSigningKey", "jwt"]
