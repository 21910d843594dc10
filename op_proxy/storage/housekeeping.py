"""Garbage collection and retention: what no flow can use any more is deleted, in small batches.

One function per family of rows, named for what it deletes; ``purge`` runs them all (``op-proxy db
purge``, and every process in the background through ``purge_periodically``). Dex's
``GarbageCollect`` is the model, made safe for several processes on one database:

- each batch reads at most ``BATCH`` primary keys, then deletes those rows in one short transaction
  whose DELETE repeats the condition, so no lock is held for long and a row that came back to life
  in between (a renewed SSO session, a grant that got a token) is left alone;
- two processes purging at once delete each row once (the other one finds it gone); a batch that
  meets a deadlock or a locked SQLite file is tried again after a short, random pause;
- a row goes ``[storage] purge_grace`` seconds after it expired, so a server whose clock runs a
  little ahead never deletes what another one still accepts.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.exc import OperationalError

from op_proxy.storage.models import (
    AccessToken,
    AdminSession,
    AuditEvent,
    AuthorizationCode,
    ClientAuthFailures,
    Grant,
    PendingLogin,
    RefreshToken,
    SsoSession,
    UpstreamLogin,
    UsedJti,
)

log = logging.getLogger("op_proxy.housekeeping")

BATCH = 500
ATTEMPTS = 3
DAY = 86400

# Core tables: a DELETE by primary keys needs none of the ORM's bookkeeping.
pending_logins = PendingLogin.__table__
upstream_logins = UpstreamLogin.__table__
authorization_codes = AuthorizationCode.__table__
access_tokens = AccessToken.__table__
refresh_tokens = RefreshToken.__table__
grants = Grant.__table__
sso_sessions = SsoSession.__table__
used_jtis = UsedJti.__table__
admin_sessions = AdminSession.__table__
audit_events = AuditEvent.__table__
client_auth_failures = ClientAuthFailures.__table__


async def delete_in_batches(db, key, *conditions) -> int:
    """Delete the rows of ``key``'s table that meet ``conditions``, ``BATCH`` primary keys at a time,
    in key order (so every batch moves on, even when another process took its rows first)."""
    deleted, after = 0, None
    while True:
        query = select(key).where(*conditions).order_by(key).limit(BATCH)
        if after is not None:
            query = query.where(key > after)
        keys, count = await _delete_one_batch(db, query, key, conditions)
        deleted += count
        if len(keys) < BATCH:
            return deleted
        after = keys[-1]
        await asyncio.sleep(0)  # requests go first between two batches


async def _delete_one_batch(db, query, key, conditions) -> tuple[list, int]:
    # The keys are read first, outside the deleting transaction: that one then starts with its write
    # (on SQLite it waits for another writer instead of failing to upgrade a read) and is short.
    async with db.session() as session:
        keys = list((await session.scalars(query)).all())
    if not keys:
        return keys, 0
    attempt = 1
    while True:
        try:
            async with db.transaction() as session:
                result = await session.execute(delete(key.table).where(key.in_(keys), *conditions))
            return keys, max(result.rowcount, 0)
        except OperationalError as exc:
            # A deadlock with another purger (MariaDB) or a SQLite file locked for longer than its
            # busy timeout: the transaction was rolled back, so trying again is safe.
            if attempt == ATTEMPTS:
                raise
            log.info("purge of %s met %s; trying again", key.table.name, _error_code(exc))
            await asyncio.sleep(random.uniform(0.05, 0.5) * attempt)
            attempt += 1


def _error_code(exc: OperationalError) -> str:
    """The driver's error code, never its message (which may quote the SQL and its parameters)."""
    args = getattr(exc.orig, "args", ())
    return f"error {args[0]}" if args and isinstance(args[0], int) else type(exc.orig).__name__


# -- one function per family ---------------------------------------------------------------------------

async def delete_expired_pending_logins(db, expired_before: int) -> int:
    """Sign-ins nobody finished in time, and finished ones (kept until expiry: a second submit of the
    same form is then told the sign-in is already done)."""
    return await delete_in_batches(db, pending_logins.c.id_digest, pending_logins.c.expires_at < expired_before)


async def delete_expired_upstream_logins(db, expired_before: int) -> int:
    return await delete_in_batches(db, upstream_logins.c.state_digest, upstream_logins.c.expires_at < expired_before)


async def delete_expired_authorization_codes(db, expired_before: int) -> int:
    """Used or not: until expiry a used code stays, so that its replay revokes the grant (RFC 6749
    §4.1.2); an expired one is refused anyway."""
    return await delete_in_batches(db, authorization_codes.c.code_digest,
                                   authorization_codes.c.expires_at < expired_before)


async def delete_expired_access_tokens(db, expired_before: int) -> int:
    return await delete_in_batches(db, access_tokens.c.jti, access_tokens.c.expires_at < expired_before)


async def delete_expired_refresh_tokens(db, expired_before: int) -> int:
    """Rotated and revoked ones too, but only once they would have expired: until then, using a
    rotated token again is a replay that revokes the whole grant (RFC 9700 §4.14.2)."""
    return await delete_in_batches(db, refresh_tokens.c.token_digest, refresh_tokens.c.expires_at < expired_before)


def _grant_has_tokens():
    return or_(
        exists().where(authorization_codes.c.grant_id == grants.c.id),
        exists().where(access_tokens.c.grant_id == grants.c.id),
        exists().where(refresh_tokens.c.grant_id == grants.c.id),
    )


async def delete_spent_grants(db, expired_before: int) -> int:
    """Grants with no code, access token or refresh token left: every token they gave has expired
    (refresh tokens are only deleted once past their life), so nothing can be refreshed or revoked."""
    return await delete_in_batches(db, grants.c.id, grants.c.created_at < expired_before, ~_grant_has_tokens())


async def delete_finished_sso_sessions(db, expired_before: int) -> int:
    """Ended or expired browser sessions, once no unrevoked grant made in them is left: a refresh
    of such a grant still asks the upstream, with the upstream refresh token the session keeps."""
    live_grant = exists().where(grants.c.sid == sso_sessions.c.sid, grants.c.revoked_at.is_(None))
    return await delete_in_batches(
        db, sso_sessions.c.cookie_digest,
        or_(sso_sessions.c.ended_at < expired_before, sso_sessions.c.expires_at < expired_before), ~live_grant)


async def delete_expired_client_assertion_ids(db, expired_before: int) -> int:
    """Used ``jti``s of private_key_jwt assertions: an assertion past its ``exp`` is refused anyway,
    so its replay needs no record."""
    return await delete_in_batches(db, used_jtis.c.jti_digest, used_jtis.c.expires_at < expired_before)


async def delete_expired_admin_sessions(db, expired_before: int) -> int:
    return await delete_in_batches(db, admin_sessions.c.cookie_digest, admin_sessions.c.expires_at < expired_before)


async def delete_finished_failure_windows(db, expired_before: int) -> int:
    """Counts of wrong client secrets whose minute is over (op_proxy/clients/throttle.py): a new
    failure starts a new window anyway."""
    from op_proxy.clients.throttle import WINDOW

    return await delete_in_batches(db, client_auth_failures.c.client_id,
                                   client_auth_failures.c.window_started_at < expired_before - WINDOW)


async def delete_audit_events_before(db, recorded_before: int) -> int:
    """Audit events past ``[audit] retention_days``."""
    return await delete_in_batches(db, audit_events.c.id, audit_events.c.at < recorded_before)


# -- all of them -------------------------------------------------------------------------------------------

async def purge(db, settings, now: int | None = None) -> dict[str, int]:
    """Delete everything expired, and audit events past retention: {table: rows deleted}. Tokens
    go before their grants, and grants before the sessions they hold, so one run clears a chain."""
    now = int(time.time()) if now is None else now
    expired_before = now - settings.storage.purge_grace
    steps = (
        ("pending_logins", delete_expired_pending_logins),
        ("upstream_logins", delete_expired_upstream_logins),
        ("authorization_codes", delete_expired_authorization_codes),
        ("access_tokens", delete_expired_access_tokens),
        ("refresh_tokens", delete_expired_refresh_tokens),
        ("grants", delete_spent_grants),
        ("sso_sessions", delete_finished_sso_sessions),
        ("used_jtis", delete_expired_client_assertion_ids),
        ("admin_sessions", delete_expired_admin_sessions),
        ("client_auth_failures", delete_finished_failure_windows),
    )
    deleted = {name: await step(db, expired_before) for name, step in steps}
    deleted["audit_events"] = await delete_audit_events_before(db, now - settings.audit.retention_days * DAY)
    return deleted


def describe(deleted: dict[str, int]) -> str:
    return " ".join(f"{name}={count}" for name, count in deleted.items())


async def purge_periodically(db, settings) -> None:
    """Every process runs this from start to shutdown: a purge every ``[storage] purge_interval``
    seconds, give or take half of it, so processes started together do not purge together."""
    interval = settings.storage.purge_interval
    while True:
        await asyncio.sleep(interval * random.uniform(0.5, 1.5))
        try:
            deleted = await purge(db, settings)
        except Exception as exc:  # noqa: BLE001 - a failed purge must not end the task; the next one retries
            detail = _error_code(exc) if isinstance(exc, OperationalError) else type(exc).__name__
            log.warning("purge failed (%s); trying again in about %d s", detail, interval)
            continue
        if any(deleted.values()):
            log.info("purged %s", describe(deleted))

