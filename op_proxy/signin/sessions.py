"""SSO sessions: one per browser sign-in, in the database; the browser holds a random cookie."""

from __future__ import annotations

import time

from quart import request
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from op_proxy.security import random_token, seal, token_digest
from op_proxy.storage.models import Account, Grant, SsoSession
from op_proxy.upstreams.base import Identity

SESSION_COOKIE = "op_session"


async def record_sign_in(db, identity: Identity, lifetime: int, data_key: bytes) -> tuple[Account, str, SsoSession]:
    """The person's account (created, or its profile brought up to date) and this browser's SSO
    session, written in ONE transaction: a sign-in that fails on the way (a value the database
    refuses, say) leaves the stored profile and every session as they were.

    Accounts are keyed on (upstream, upstream subject), never on an e-mail address. One browser, one
    session: the same person signing in again (prompt=login, max_age) renews the session they have,
    so that signing out ends every token issued in this browser; someone else signing in ends the
    previous person's session, and its tokens, first."""
    current = await current_session(db)
    for _attempt in range(2):
        try:
            async with db.transaction() as session:
                account = await upsert_account(session, identity)
                sso = None
                if current is not None and current.sub == account.sub:
                    sso = await renew_session(session, current, identity, lifetime, data_key)
                    cookie = request.cookies[SESSION_COOKIE]
                elif current is not None:
                    await end_session_in(session, current, reason="another_person_signed_in")
                if sso is None:
                    cookie, sso = start_session(session, account, identity, lifetime, data_key)
            return account, cookie, sso
        except IntegrityError:  # another process created the same account at the same moment: read it
            continue
    raise RuntimeError("could not create account")


async def upsert_account(session, identity: Identity) -> Account:
    now = int(time.time())
    account = await session.scalar(select(Account).where(
        Account.upstream == identity.upstream, Account.upstream_subject == identity.subject))
    if account is None:
        account = Account(sub=random_token(16), upstream=identity.upstream, upstream_subject=identity.subject,
                          created_at=now)
        session.add(account)
    account.profile, account.updated_at = identity.profile, now
    return account


def start_session(session, account: Account, identity: Identity, lifetime: int,
                  data_key: bytes) -> tuple[str, SsoSession]:
    now = int(time.time())
    cookie = random_token(32)
    row = SsoSession(cookie_digest=token_digest(cookie), sid=random_token(16), sub=account.sub,
                     upstream=identity.upstream, auth_time=identity.authenticated_at(now), acr=identity.acr,
                     amr=identity.amr,
                     upstream_id_token=identity.upstream_id_token,
                     upstream_refresh_token=seal(data_key, identity.upstream_refresh_token),
                     created_at=now, expires_at=now + lifetime)
    session.add(row)
    return cookie, row


async def renew_session(session, sso: SsoSession, identity: Identity, lifetime: int,
                        data_key: bytes) -> SsoSession | None:
    """The fresh authentication, in the session the browser already has (same sid); None if that
    session was ended meanwhile (a sign-out in another tab), which must stay ended."""
    now = int(time.time())
    values = {"auth_time": identity.authenticated_at(now), "acr": identity.acr, "amr": identity.amr,
              "expires_at": now + lifetime,
              "upstream_id_token": identity.upstream_id_token,
              "upstream_refresh_token": seal(data_key, identity.upstream_refresh_token)}
    result = await session.execute(update(SsoSession).where(SsoSession.cookie_digest == sso.cookie_digest,
                                                            SsoSession.ended_at.is_(None)).values(**values))
    if result.rowcount != 1:
        return None
    for name, value in values.items():
        setattr(sso, name, value)
    return sso


async def current_session(db) -> SsoSession | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    async with db.session() as session:
        row = await session.get(SsoSession, token_digest(cookie))
    if row is None or row.ended_at is not None or row.expires_at <= time.time():
        return None
    return row


async def end_session(db, sso: SsoSession, reason: str = "logout") -> None:
    """Ends the browser session and revokes every grant made in it."""
    async with db.transaction() as session:
        await end_session_in(session, sso, reason)


async def end_session_in(session, sso: SsoSession, reason: str) -> None:
    now = int(time.time())
    await session.execute(update(SsoSession).where(SsoSession.cookie_digest == sso.cookie_digest)
                          .values(ended_at=now))
    await session.execute(update(Grant).where(Grant.sid == sso.sid, Grant.revoked_at.is_(None))
                          .values(revoked_at=now, revoked_reason=reason))


async def session_by_sid(db, sid: str) -> SsoSession | None:
    async with db.session() as session:
        return await session.scalar(select(SsoSession).where(SsoSession.sid == sid))


async def account_by_sub(db, sub: str) -> Account | None:
    async with db.session() as session:
        return await session.get(Account, sub)
