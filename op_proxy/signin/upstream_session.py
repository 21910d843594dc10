"""Keeping an upstream session in step with ours: refresh there when an app refreshes here, and
send the person on to the upstream's sign-out when they sign out here."""

from __future__ import annotations

import time

from sqlalchemy import update

from op_proxy.errors import InvalidGrant, TemporarilyUnavailable
from op_proxy.security import seal, unseal
from op_proxy.signin.sessions import session_by_sid
from op_proxy.storage.models import Account, Grant, SsoSession
from op_proxy.upstreams.base import LoggingOutConnector, LoginFailed, RefreshingConnector, UpstreamUnavailable, is_a

LOGOUT_STATE_TYPE = "logout-state+jwt"
LOGOUT_DONE_PATH = "/logout/done"


async def refresh_at_upstream(svc, grant: Grant) -> None:
    """Dex-style: an app's refresh also asks the upstream whether the person is still good there.
    A refusal ends the grant; an unreachable upstream is a temporary failure, not a sign-out."""
    sso = await session_by_sid(svc.db, grant.sid)
    connector = svc.connectors.get(sso.upstream) if sso else None
    if sso is None or not sso.upstream_refresh_token or not is_a(connector, RefreshingConnector):
        return
    account_row = await svc_account(svc, grant.sub)
    try:
        identity = await connector.refresh(unseal(svc.keyring.data_key(), sso.upstream_refresh_token),
                                           account_row.upstream_subject)
    except UpstreamUnavailable:
        raise TemporarilyUnavailable("the upstream identity provider cannot be reached") from None
    except LoginFailed:
        raise InvalidGrant("the upstream identity provider no longer accepts this session") from None
    async with svc.db.transaction() as session:
        values = {}
        if identity.upstream_refresh_token:
            # RFC 6749 §6: an upstream that issues no new refresh token leaves the one we have valid.
            values["upstream_refresh_token"] = seal(svc.keyring.data_key(), identity.upstream_refresh_token)
        if identity.upstream_id_token:
            values["upstream_id_token"] = identity.upstream_id_token
        if values:
            await session.execute(update(SsoSession).where(SsoSession.sid == sso.sid).values(**values))
        if identity.profile:
            await session.execute(update(Account).where(Account.sub == grant.sub)
                                  .values(profile=identity.profile, updated_at=int(time.time())))


async def svc_account(svc, sub: str) -> Account:
    async with svc.db.session() as session:
        return await session.get(Account, sub)


async def upstream_logout_redirect(svc, sso: SsoSession, return_to: str | None, state: str | None,
                                   client_id: str | None) -> str | None:
    """The upstream's end-session URL, carrying where to go afterwards in a short-lived state
    signed by us (so any op-proxy process can finish the sign-out, and nobody can forge it)."""
    connector = svc.connectors.get(sso.upstream)
    if not is_a(connector, LoggingOutConnector):
        return None
    now = int(time.time())
    signed_state = svc.keyring.sign({"iss": svc.settings.issuer, "aud": svc.settings.issuer, "iat": now,
                                     "exp": now + 600, "return_to": return_to, "state": state,
                                     "client_id": client_id}, typ=LOGOUT_STATE_TYPE)
    return await connector.end_session_url(sso.upstream_id_token, svc.endpoint(LOGOUT_DONE_PATH), signed_state)


def logout_continuation(svc, signed_state: str | None) -> dict | None:
    from op_proxy.keys.keyring import InvalidToken

    if not signed_state:
        return None
    try:
        header, claims = svc.keyring.verify(signed_state)
    except InvalidToken:
        return None
    if header.get("typ") != LOGOUT_STATE_TYPE or claims.get("aud") != svc.settings.issuer \
            or claims.get("exp", 0) <= time.time():
        return None
    return claims
