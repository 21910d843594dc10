"""Checking tokens we issued: access tokens for userinfo and introspection, refresh tokens."""

from __future__ import annotations

import time

from op_proxy.keys.keyring import InvalidToken
from op_proxy.security import token_digest
from op_proxy.storage import operations
from op_proxy.storage.models import Grant


def id_token_hint_claims(svc, hint: str) -> dict:
    """An ID token we issued (expired is fine, OIDC Core §3.1.2.1): signature, issuer, and not an
    access token — holding someone's access token must not let anyone act as their ID token."""
    header, claims = svc.keyring.verify(hint)
    if header.get("typ") == "at+jwt" or claims.get("iss") != svc.settings.issuer or "at_hash" not in claims:
        raise InvalidToken("not an ID token of this issuer")
    return claims


def is_opaque(token: str) -> bool:
    """Our JWTs have two dots (RFC 7515 §7.1); our opaque tokens are base64url, which has none."""
    return "." not in token


async def active_access_token(svc, token: str, *, with_profile: bool = False
                              ) -> tuple[dict, Grant, dict | None] | None:
    """Claims, grant (and the account's profile) of a valid, unexpired, unrevoked access token; None
    otherwise. Revocation is read from the database on every call: a revoked token is refused at once."""
    if is_opaque(token):
        active = await operations.active_access_token_row(svc.db, token_digest(token), with_profile=with_profile)
        if active is None or active.row["scope"] is None or active.row["expires_at"] <= time.time():
            return None
        grant, row = active.grant, active.row
        claims = {"iss": svc.settings.issuer, "sub": grant.client_sub, "aud": grant.client_id,
                  "client_id": grant.client_id, "iat": row["issued_at"], "exp": row["expires_at"],
                  "scope": row["scope"]}
        return claims, grant, active.profile
    try:
        header, claims = svc.keyring.verify(token)
    except InvalidToken:
        return None
    if header.get("typ") != "at+jwt" or claims.get("iss") != svc.settings.issuer:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time() or not isinstance(claims.get("jti"), str):
        return None
    active = await operations.active_access_token_row(svc.db, claims["jti"], with_profile=with_profile)
    if active is None:
        return None
    return claims, active.grant, active.profile


async def active_refresh_token(svc, token: str) -> tuple[dict, Grant] | None:
    active = await operations.active_refresh_token_row(svc.db, token_digest(token))
    return None if active is None else (active.row, active.grant)
