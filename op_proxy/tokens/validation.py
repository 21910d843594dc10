"""Checking tokens we issued: access tokens for userinfo and introspection, refresh tokens."""

from __future__ import annotations

import time

from op_proxy.keys.keyring import InvalidToken
from op_proxy.security import token_digest
from op_proxy.storage.models import AccessToken, Grant, RefreshToken


def id_token_hint_claims(svc, hint: str) -> dict:
    """An ID token we issued (expired is fine, OIDC Core §3.1.2.1): signature, issuer, and not an
    access token — holding someone's access token must not let anyone act as their ID token."""
    header, claims = svc.keyring.verify(hint)
    if header.get("typ") == "at+jwt" or claims.get("iss") != svc.settings.issuer or "at_hash" not in claims:
        raise InvalidToken("not an ID token of this issuer")
    return claims


async def active_access_token(svc, token: str) -> tuple[dict, Grant] | None:
    """Claims and grant of a valid, unexpired, unrevoked access token; None otherwise."""
    try:
        header, claims = svc.keyring.verify(token)
    except InvalidToken:
        return None
    if header.get("typ") != "at+jwt" or claims.get("iss") != svc.settings.issuer:
        return None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
        return None
    async with svc.db.session() as session:
        row = await session.get(AccessToken, claims.get("jti"))
        grant = await session.get(Grant, row.grant_id) if row else None
    if row is None or row.revoked_at is not None or grant is None or grant.revoked_at is not None:
        return None
    return claims, grant


async def active_refresh_token(svc, token: str) -> tuple[RefreshToken, Grant] | None:
    async with svc.db.session() as session:
        row = await session.get(RefreshToken, token_digest(token))
        grant = await session.get(Grant, row.grant_id) if row else None
    if (row is None or row.rotated_at is not None or row.revoked_at is not None
            or row.expires_at <= time.time() or grant is None or grant.revoked_at is not None):
        return None
    return row, grant
