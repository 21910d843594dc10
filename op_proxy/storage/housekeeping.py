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

from op_proxy.storage.tables import (
    ACCESS_TOKENS,
    ADMIN_SESSIONS,
    AUDIT_EVENTS,
    CLIENT_AUTH_FAILURES,
    CODES,
    GRANTS,
    PENDING,
    REFRESH_TOKENS,
    SSO_SESSIONS,
    UPSTREAM_LOGINS,
    USED_JTIS,
)

log = logging.getLogger("op_proxy.housekeeping")

BATCH = 500
ATTEMPTS = 3
DAY = 86400

# Core tables: a DELETE by primary keys needs none of the ORM's bookkeeping.


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
    return await delete_in_batches(db, PENDING.c.id_digest, PENDING.c.expires_at < expired_before)


async def delete_expired_upstream_logins(db, expired_before: int) -> int:
    return await delete_in_batches(db, UPSTREAM_LOGINS.c.state_digest, UPSTREAM_LOGINS.c.expires_at < expired_before)


async def delete_expired_authorization_codes(db, expired_before: int) -> int:
    """Used or not: until expiry a used code stays, so that its replay revokes the grant (RFC 6749
    §4.1.2); an expired one is refused anyway."""
    return await delete_in_batches(db, CODES.c.code_digest,
                                   CODES.c.expires_at < expired_before)


async def delete_expired_access_tokens(db, expired_before: int) -> int:
    return await delete_in_batches(db, ACCESS_TOKENS.c.jti, ACCESS_TOKENS.c.expires_at < expired_before)


async def delete_expired_refresh_tokens(db, expired_before: int) -> int:
    """Rotated and revoked ones too, but only once they would have expired: until then, using a
    rotated token again is a replay that revokes the whole grant (RFC 9700 §4.14.2)."""
    return await delete_in_batches(db, REFRESH_TOKENS.c.token_digest, REFRESH_TOKENS.c.expires_at < expired_before)


def _grant_has_tokens():
    return or_(
        exists().where(CODES.c.grant_id == GRANTS.c.id),
        exists().where(ACCESS_TOKENS.c.grant_id == GRANTS.c.id),
        exists().where(REFRESH_TOKENS.c.grant_id == GRANTS.c.id),
    )


async def delete_spent_grants(db, expired_before: int) -> int:
    """Grants with no code, access token or refresh token left: every token they gave has expired
    (refresh tokens are only deleted once past their life), so nothing can be refreshed or revoked."""
    return await delete_in_batches(db, GRANTS.c.id, GRANTS.c.created_at < expired_before, ~_grant_has_tokens())


async def delete_finished_sso_sessions(db, expired_before: int) -> int:
    """Ended or expired browser sessions, once no unrevoked grant made in them is left: a refresh
    of such a grant still asks the upstream, with the upstream refresh token the session keeps."""
    live_grant = exists().where(GRANTS.c.sid == SSO_SESSIONS.c.sid, GRANTS.c.revoked_at.is_(None))
    return await delete_in_batches(
        db, SSO_SESSIONS.c.cookie_digest,
        or_(SSO_SESSIONS.c.ended_at < expired_before, SSO_SESSIONS.c.expires_at < expired_before), ~live_grant)


async def delete_expired_client_assertion_ids(db, expired_before: int) -> int:
    """Used ``jti``s of private_key_jwt assertions: an assertion past its ``exp`` is refused anyway,
    so its replay needs no record."""
    return await delete_in_batches(db, USED_JTIS.c.jti_digest, USED_JTIS.c.expires_at < expired_before)


async def delete_expired_admin_sessions(db, expired_before: int) -> int:
    return await delete_in_batches(db, ADMIN_SESSIONS.c.cookie_digest, ADMIN_SESSIONS.c.expires_at < expired_before)


async def delete_finished_failure_windows(db, expired_before: int) -> int:
    """Counts of wrong client secrets whose minute is over (op_proxy/clients/throttle.py): a new
    failure starts a new window anyway."""
    from op_proxy.clients.throttle import WINDOW

    return await delete_in_batches(db, CLIENT_AUTH_FAILURES.c.client_id,
                                   CLIENT_AUTH_FAILURES.c.window_started_at < expired_before - WINDOW)


async def delete_audit_events_before(db, recorded_before: int) -> int:
    """Audit events past ``[audit] retention_days``."""
    return await delete_in_batches(db, AUDIT_EVENTS.c.id, AUDIT_EVENTS.c.at < recorded_before)


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

