"""The storage operations of the hot paths, named for what the flow does (Dex's ``storage.Storage``
is the model): get a client, redeem a code, rotate a refresh token, issue tokens, revoke a grant,
load an access token with its grant and account.

Each is one function run in a worker thread (``Database.run``), written in SQLAlchemy Core: a
request makes one trip to the database, reads each row once with one joined SELECT, prepares what
it will write (tokens signed, audit row), then writes it in one short transaction
(``Database.writing``) with its audit row. Single-use rows are consumed with
``UPDATE … WHERE consumed IS NULL``: of two requests racing, exactly one sees its row count be 1.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update

from op_proxy import audit
from op_proxy.errors import InvalidGrant
from op_proxy.storage.models import (
    Client,
    Grant,
)
from op_proxy.storage.tables import ACCESS_TOKENS, ACCOUNTS, AUDIT_EVENTS, CODES, GRANTS, REFRESH_TOKENS, SSO_SESSIONS

GRANT_COLUMNS = [column.label("grant__" + column.name) for column in GRANTS.c]


@dataclass
class GrantRecord:
    """A grant as read by an operation (the ORM's ``Grant`` without its bookkeeping)."""

    id: str
    client_id: str
    sub: str
    subject: str | None
    sid: str
    scope: str
    claims: dict | None
    auth_time: int
    acr: str | None
    amr: list
    app_user: dict | None
    created_at: int
    revoked_at: int | None
    revoked_reason: str | None

    client_sub = Grant.client_sub


GRANT_FIELDS = [(column.name, "grant__" + column.name) for column in GRANTS.c]


def grant_from(row) -> GrantRecord:
    """The grant of a joined row (its columns labelled ``grant__*``), for the minter and the checks."""
    return GrantRecord(**{name: row[label] for name, label in GRANT_FIELDS})


# Statements built once: building and keying a statement per request costs more than running it.
REVOKE_GRANT = (update(GRANTS).where(GRANTS.c.id == bindparam("b_grant"), GRANTS.c.revoked_at.is_(None))
                .values(revoked_at=bindparam("now"), revoked_reason=bindparam("reason")))
REVOKE_GRANT_ACCESS_TOKENS = (update(ACCESS_TOKENS)
                              .where(ACCESS_TOKENS.c.grant_id == bindparam("b_grant"),
                                     ACCESS_TOKENS.c.revoked_at.is_(None))
                              .values(revoked_at=bindparam("now")))
REVOKE_GRANT_REFRESH_TOKENS = (update(REFRESH_TOKENS)
                               .where(REFRESH_TOKENS.c.grant_id == bindparam("b_grant"),
                                      REFRESH_TOKENS.c.revoked_at.is_(None))
                               .values(revoked_at=bindparam("now")))
REVOKE_ACCESS_TOKEN = (update(ACCESS_TOKENS).where(ACCESS_TOKENS.c.jti == bindparam("b_jti"))
                       .values(revoked_at=bindparam("now")))
INSERT_AUDIT_EVENT = insert(AUDIT_EVENTS)
INSERT_ACCESS_TOKEN = insert(ACCESS_TOKENS)
INSERT_REFRESH_TOKEN = insert(REFRESH_TOKENS)
FIND_CODE = (select(CODES, *GRANT_COLUMNS, ACCOUNTS.c.profile)
             .join(GRANTS, GRANTS.c.id == CODES.c.grant_id)
             .outerjoin(ACCOUNTS, ACCOUNTS.c.sub == GRANTS.c.sub)
             .where(CODES.c.code_digest == bindparam("digest")))
CONSUME_CODE = (update(CODES).where(CODES.c.code_digest == bindparam("digest"), CODES.c.consumed_at.is_(None))
                .values(consumed_at=bindparam("now")))
FIND_REFRESH_TOKEN_FAMILY = (
    select(REFRESH_TOKENS, *GRANT_COLUMNS, ACCOUNTS.c.profile, SSO_SESSIONS.c.upstream.label("sso_upstream"),
           SSO_SESSIONS.c.upstream_refresh_token.is_not(None).label("sso_can_refresh"))
    .join(GRANTS, GRANTS.c.id == REFRESH_TOKENS.c.grant_id)
    .outerjoin(ACCOUNTS, ACCOUNTS.c.sub == GRANTS.c.sub)
    .outerjoin(SSO_SESSIONS, SSO_SESSIONS.c.sid == GRANTS.c.sid)
    .where(REFRESH_TOKENS.c.token_digest == bindparam("digest")))
ROTATE_REFRESH_TOKEN = (update(REFRESH_TOKENS)
                        .where(REFRESH_TOKENS.c.token_digest == bindparam("digest"),
                               REFRESH_TOKENS.c.rotated_at.is_(None), REFRESH_TOKENS.c.revoked_at.is_(None))
                        .values(rotated_at=bindparam("now")))
FIND_ACCESS_TOKEN = (select(ACCESS_TOKENS, *GRANT_COLUMNS).join(GRANTS, GRANTS.c.id == ACCESS_TOKENS.c.grant_id)
                     .where(ACCESS_TOKENS.c.jti == bindparam("b_jti")))
FIND_ACCESS_TOKEN_WITH_PROFILE = (
    select(ACCESS_TOKENS, *GRANT_COLUMNS, ACCOUNTS.c.profile)
    .join(GRANTS, GRANTS.c.id == ACCESS_TOKENS.c.grant_id).outerjoin(ACCOUNTS, ACCOUNTS.c.sub == GRANTS.c.sub)
    .where(ACCESS_TOKENS.c.jti == bindparam("b_jti")))
FIND_REFRESH_TOKEN = (select(REFRESH_TOKENS, *GRANT_COLUMNS).join(GRANTS, GRANTS.c.id == REFRESH_TOKENS.c.grant_id)
                      .where(REFRESH_TOKENS.c.token_digest == bindparam("digest")))


# -- clients ------------------------------------------------------------------------------------------

async def get_client(db, client_id: str | None, *, enabled_only: bool = True) -> Client | None:
    """A client, from this process's memory when it is fresh enough (see ``storage.caches``)."""
    if not client_id:
        return None
    client = db.caches.cached_client(client_id)
    if client is None:
        client = await db.run(db.caches.load_client, client_id)
    if client is None or (enabled_only and not client.enabled):
        return None
    return client


# -- grants -------------------------------------------------------------------------------------------

def revoke_grant_rows(connection, grant_id: str, reason: str) -> None:
    """Revoking a grant revokes every access and refresh token issued under it."""
    now = int(time.time())
    connection.execute(REVOKE_GRANT, {"b_grant": grant_id, "now": now, "reason": reason})
    connection.execute(REVOKE_GRANT_ACCESS_TOKENS, {"b_grant": grant_id, "now": now})
    connection.execute(REVOKE_GRANT_REFRESH_TOKENS, {"b_grant": grant_id, "now": now})


def write_audit(connection, values: dict | None) -> None:
    if values is not None:
        connection.execute(INSERT_AUDIT_EVENT, values)


async def revoke_grant(db, grant_id: str, reason: str, audit_entry: dict | None = None) -> None:
    def operation(connection):
        with db.writing(connection):
            revoke_grant_rows(connection, grant_id, reason)
            write_audit(connection, audit_entry)

    await db.run(operation)
    if audit_entry is not None:
        audit.announce(audit_entry)


async def revoke_access_token(db, jti: str, audit_entry: dict | None = None) -> None:
    def operation(connection):
        with db.writing(connection):
            connection.execute(REVOKE_ACCESS_TOKEN, {"b_jti": jti, "now": int(time.time())})
            write_audit(connection, audit_entry)

    await db.run(operation)
    if audit_entry is not None:
        audit.announce(audit_entry)


# -- issuing tokens -----------------------------------------------------------------------------------

def store_issued(connection, access_row: dict, refresh_row: dict, audit_entry: dict) -> None:
    """Issue tokens: the access and refresh token rows and the audit row, in the caller's transaction."""
    connection.execute(INSERT_ACCESS_TOKEN, access_row)
    connection.execute(INSERT_REFRESH_TOKEN, refresh_row)
    write_audit(connection, audit_entry)


@dataclass
class Refusal:
    """A refusal whose consequences (a revoked grant, an audit row) must be committed before it is raised."""

    description: str
    audit_entry: dict | None = None


def sign_once(mint):
    """``mint``, signing on its first call only: an operation runs again when SQLite was busy, and
    its tokens, signed before the write, are the costly part (two RS256 signatures) and still good."""
    minted = None

    def once(*args):
        nonlocal minted
        if minted is None:
            minted = mint(*args)
        return minted
    return once


async def finish(db, operation, *args):
    """Run a grant operation; commit, announce its audit row, then raise a refusal it returned."""
    result = await db.run(operation, *args)
    if isinstance(result, Refusal):
        if result.audit_entry is not None:
            audit.announce(result.audit_entry)
        raise InvalidGrant(result.description)
    return result


# -- authorization codes (RFC 6749 §4.1.3) ------------------------------------------------------------

async def redeem_code(db, code_digest: str, check, mint, audit_for):
    """Redeem a code in one transaction, in node-oidc-provider's order: find it (with its grant and
    account), ``check(code)`` — client, expiry, redirect_uri, PKCE — which refuses without changing
    anything, so a leaked code presented by another client or a mistyped verifier does not burn it;
    then consume it atomically. A code consumed before means it leaked: its grant is revoked
    (RFC 9700 §4.2.4). ``mint(code, grant, profile)`` returns (response, access row, refresh row);
    ``audit_for(event, outcome, code, grant)`` the audit row's values."""
    mint = sign_once(mint)

    def operation(connection):
        row = connection.execute(FIND_CODE, {"digest": code_digest}).mappings().first()
        if row is None:
            raise InvalidGrant("unknown authorization code")
        grant = grant_from(row)
        check(row)
        # Signed before the write, so the write transaction stays short; thrown away if refused.
        minted = mint(row, grant, row["profile"]) if grant.revoked_at is None and row["profile"] is not None else None
        with db.writing(connection):
            consumed = connection.execute(CONSUME_CODE, {"digest": code_digest, "now": int(time.time())})
            if consumed.rowcount != 1:
                revoke_grant_rows(connection, grant.id, "code_replayed")
                entry = audit_for("authorization_code_replayed", "failure", row, grant)
                write_audit(connection, entry)
                return Refusal("the authorization code has already been used", entry)
            if minted is None:
                return Refusal("the grant has been revoked")
            issued, access_row, refresh_row = minted
            entry = audit_for("tokens_issued", "success", row, grant)
            store_issued(connection, access_row, refresh_row, entry)
        return issued, entry

    issued, entry = await finish(db, operation)
    audit.announce(entry)
    return issued


# -- refresh tokens (RFC 6749 §6), rotated on every use -----------------------------------------------

@dataclass
class UpstreamRefreshNeeded:
    grant: GrantRecord


async def rotate_refresh_token(db, token_digest: str, client_id: str, *, narrow, needs_upstream,
                               upstream_done: bool, mint, audit_for):
    """Use a refresh token once, in one transaction: find it with its grant, account and SSO session;
    ``narrow(grant)`` the scope (a refused request leaves the token usable); stop before any change
    when ``needs_upstream(upstream, has_refresh_token)`` says the upstream must be asked first (the
    caller asks, then calls again with ``upstream_done``); rotate it; a token used before means
    it leaked, so the whole grant is revoked (RFC 9700 §4.14.2); then issue the new tokens."""
    mint = sign_once(mint)

    def operation(connection):
        row = connection.execute(FIND_REFRESH_TOKEN_FAMILY, {"digest": token_digest}).mappings().first()
        if row is None or row["client_id"] != client_id:
            raise InvalidGrant("unknown refresh token")
        grant = grant_from(row)
        scope = narrow(grant)
        live = row["rotated_at"] is None and row["revoked_at"] is None and grant.revoked_at is None
        if live and not upstream_done and needs_upstream(row["sso_upstream"], bool(row["sso_can_refresh"])):
            return UpstreamRefreshNeeded(grant)
        minted = None
        if live and row["expires_at"] > time.time() and row["profile"] is not None:
            grant.scope = scope  # for the tokens minted now; the grant itself keeps its full scope
            minted = mint(grant, row["profile"])  # signed before the write, thrown away if refused
        with db.writing(connection):
            rotated = connection.execute(ROTATE_REFRESH_TOKEN, {"digest": token_digest, "now": int(time.time())})
            if rotated.rowcount != 1:
                if row["revoked_at"] is None:
                    revoke_grant_rows(connection, grant.id, "refresh_token_reused")
                    entry = audit_for("refresh_token_reused", "failure", grant)
                    write_audit(connection, entry)
                    return Refusal("the refresh token has already been used or revoked", entry)
                return Refusal("the refresh token has already been used or revoked")
            if row["expires_at"] <= time.time():
                return Refusal("the refresh token has expired")
            if grant.revoked_at is not None or minted is None:
                return Refusal("the grant has been revoked")
            issued, access_row, refresh_row = minted
            entry = audit_for("tokens_issued", "success", grant)
            store_issued(connection, access_row, refresh_row, entry)
        return issued, entry

    result = await finish(db, operation)
    if isinstance(result, UpstreamRefreshNeeded):
        return result
    issued, entry = result
    audit.announce(entry)
    return issued


# -- checking tokens ----------------------------------------------------------------------------------

@dataclass
class ActiveToken:
    row: dict  # the access or refresh token row
    grant: GrantRecord
    profile: dict | None


async def active_access_token_row(db, jti: str, *, with_profile: bool) -> ActiveToken | None:
    """An access token's row with its grant (and the account's profile), if neither is revoked."""
    query = FIND_ACCESS_TOKEN_WITH_PROFILE if with_profile else FIND_ACCESS_TOKEN

    def operation(connection):
        return connection.execute(query, {"b_jti": jti}).mappings().first()

    row = await db.run(operation)
    if row is None or row["revoked_at"] is not None or row["grant__revoked_at"] is not None:
        return None
    return ActiveToken(dict(row), grant_from(row), row.get("profile"))


async def active_refresh_token_row(db, token_digest: str) -> ActiveToken | None:
    def operation(connection):
        return connection.execute(FIND_REFRESH_TOKEN, {"digest": token_digest}).mappings().first()

    row = await db.run(operation)
    if (row is None or row["rotated_at"] is not None or row["revoked_at"] is not None
            or row["expires_at"] <= time.time() or row["grant__revoked_at"] is not None):
        return None
    return ActiveToken(dict(row), grant_from(row), None)
