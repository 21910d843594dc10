"""One place that makes tokens. Each mint returns the rows revocation and introspection need, for
the caller's one transaction (``op_proxy.storage.operations.issue_tokens``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from op_proxy.claims.release import release
from op_proxy.security import left_half_hash, random_token, token_digest
from op_proxy.storage.models import Grant

ACCESS_TOKEN_FORMATS = ("jwt", "opaque")


@dataclass
class IssuedTokens:
    access_token: str
    expires_in: int
    id_token: str
    refresh_token: str | None
    scope: str

    def response(self) -> dict:
        body = {"access_token": self.access_token, "token_type": "Bearer", "expires_in": self.expires_in,
                "id_token": self.id_token, "scope": self.scope}
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


def app_user_claims(grant: Grant) -> dict:
    """The app's own record of the person (from its user handler): ``app_user``, and its ``role``
    at the top level where apps of the old gateway look for it."""
    if not grant.app_user:
        return {}
    claims = {"app_user": grant.app_user}
    if grant.app_user.get("role") is not None:
        claims["role"] = grant.app_user["role"]
    return claims


@dataclass(frozen=True)
class Lifetimes:
    access_token_lifetime: int
    id_token_lifetime: int
    refresh_token_lifetime: int


class TokenMinter:
    def __init__(self, settings, keyring):
        self.issuer = settings.issuer
        self.server_lifetimes = settings.tokens
        self.keyring = keyring

    def lifetimes(self, client) -> Lifetimes:
        """The client's own lifetimes where it has them, never longer than the server's (keys are retired
        by the server's longest lifetime; validation refuses longer ones, this keeps the promise anyway)."""
        def one(name: str) -> int:
            server = getattr(self.server_lifetimes, name)
            own = getattr(client, name, None) if client is not None else None
            return min(own, server) if own else server

        return Lifetimes(*(one(name) for name in ("access_token_lifetime", "id_token_lifetime",
                                                    "refresh_token_lifetime")))

    def access_token(self, grant: Grant, now: int, lifetimes: Lifetimes, token_format: str | None = None,
                     key=None) -> tuple[str, dict]:
        """RFC 9068: a JWT with ``typ: at+jwt`` that resource servers verify with our JWKS; or, for a
        client that asked for it, an opaque random string its resource servers introspect (RFC 7662)
        — one RSA signature fewer per token response."""
        expires_at = now + lifetimes.access_token_lifetime
        if token_format == "opaque":
            token = random_token(32)
            return token, {"jti": token_digest(token), "grant_id": grant.id, "client_id": grant.client_id,
                           "expires_at": expires_at, "scope": grant.scope, "issued_at": now}
        jti = random_token(16)
        claims = {
            "iss": self.issuer, "sub": grant.client_sub, "aud": grant.client_id, "client_id": grant.client_id,
            "iat": now, "exp": expires_at, "jti": jti, "scope": grant.scope,
            "auth_time": grant.auth_time, "sid": grant.sid,
        }
        if grant.acr:
            claims["acr"] = grant.acr
        if grant.amr:
            claims["amr"] = grant.amr
        token = self.keyring.sign(claims, typ="at+jwt", key=key)
        return token, {"jti": jti, "grant_id": grant.id, "client_id": grant.client_id, "expires_at": expires_at}

    def id_token(self, grant: Grant, profile: dict, allowed_scopes, *, now: int, access_token: str,
                 nonce: str | None, lifetime: int, key=None) -> str:
        """OIDC Core §2 and §3.1.3.6; profile claims released as for userinfo (§5.4, §5.5)."""
        requested = (grant.claims or {}).get("id_token") or {}
        claims = release(profile, grant.scope.split(), requested, allowed_scopes)
        claims.update(app_user_claims(grant))
        claims.update({
            "iss": self.issuer, "sub": grant.client_sub, "aud": grant.client_id, "azp": grant.client_id,
            "iat": now, "exp": now + lifetime, "auth_time": grant.auth_time,
            "sid": grant.sid, "at_hash": left_half_hash(access_token),
        })
        if nonce:
            claims["nonce"] = nonce
        if grant.acr:
            claims["acr"] = grant.acr
        if grant.amr:
            claims["amr"] = grant.amr
        return self.keyring.sign(claims, key=key)

    def refresh_token(self, grant: Grant, now: int, lifetime: int) -> tuple[str, dict]:
        token = random_token(32)
        return token, {"token_digest": token_digest(token), "grant_id": grant.id, "client_id": grant.client_id,
                       "created_at": now, "expires_at": now + lifetime}

    def mint(self, grant: Grant, profile: dict, client, *, nonce: str | None = None) -> tuple[IssuedTokens, dict, dict]:
        """A full token response for ``client``, and the access and refresh token rows to store with it."""
        now = int(time.time())
        lifetimes = self.lifetimes(client)
        token_format = getattr(client, "access_token_format", None)
        key = self.keyring.signing_key(now)  # one key for both tokens, looked up once
        access_token, access_row = self.access_token(grant, now, lifetimes, token_format, key)
        refresh_token, refresh_row = self.refresh_token(grant, now, lifetimes.refresh_token_lifetime)
        id_token = self.id_token(grant, profile, client.allowed_scopes, now=now, access_token=access_token,
                                 nonce=nonce, lifetime=lifetimes.id_token_lifetime, key=key)
        issued = IssuedTokens(access_token, lifetimes.access_token_lifetime, id_token, refresh_token, grant.scope)
        return issued, access_row, refresh_row
