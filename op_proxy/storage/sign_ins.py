"""The storage operations of a sign-in, in SQLAlchemy Core like ``operations`` (read it first): keep a
pending sign-in, find it, record who signed in (account and SSO session together), finish it once.

These are the parts; ``op_proxy.signin`` composes them into one operation per request and runs it
with ``Database.run``. Each part takes the operation's connection; those that write are called
inside the operation's ``Database.writing`` block.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, insert, select, update

from op_proxy.security import random_token, seal, token_digest
from op_proxy.storage.tables import ACCOUNTS, CODES, CONSENTS, GRANTS, PENDING, SSO_SESSIONS, UPSTREAM_LOGINS
from op_proxy.upstreams.base import Identity


@dataclass
class SessionRecord:
    """An SSO session row: one per browser sign-in; the browser holds a random cookie, we its digest."""

    cookie_digest: str
    sid: str
    sub: str
    upstream: str
    auth_time: int
    acr: str | None
    amr: list
    upstream_id_token: str | None
    upstream_refresh_token: str | None  # sealed with the data key
    created_at: int
    expires_at: int
    ended_at: int | None

    @property
    def is_live(self) -> bool:
        return self.ended_at is None and self.expires_at > time.time()


@dataclass
class AccountRecord:
    """A person as one upstream knows them; ``sub`` is ours, stable and meaningless."""

    sub: str
    upstream: str
    upstream_subject: str
    profile: dict
    created_at: int
    updated_at: int


SESSION_COLUMNS = [column.label("session__" + column.name) for column in SSO_SESSIONS.c]

# Statements built once: building and keying a statement per request costs more than running it.
INSERT_PENDING = insert(PENDING)
FIND_PENDING = select(PENDING).where(PENDING.c.id_digest == bindparam("digest"))
FINISH_PENDING = (update(PENDING).where(PENDING.c.id_digest == bindparam("digest"), PENDING.c.finished_at.is_(None))
                  .values(finished_at=bindparam("now"), outcome=bindparam("answer")))
KEEP_ANSWER = (update(PENDING).where(PENDING.c.id_digest == bindparam("digest"), PENDING.c.finished_at.is_not(None))
               .values(outcome=bindparam("answer")))
SAVE_PARAMS = update(PENDING).where(PENDING.c.id_digest == bindparam("digest")).values(params=bindparam("params"))
FIND_SESSION = select(SSO_SESSIONS).where(SSO_SESSIONS.c.cookie_digest == bindparam("digest"))
FIND_SESSION_BY_SID = select(SSO_SESSIONS).where(SSO_SESSIONS.c.sid == bindparam("b_sid"))
FIND_SIGNED_IN = (select(*SESSION_COLUMNS, ACCOUNTS).join(ACCOUNTS, ACCOUNTS.c.sub == SSO_SESSIONS.c.sub)
                  .where(SSO_SESSIONS.c.cookie_digest == bindparam("digest")))
FIND_ACCOUNT = select(ACCOUNTS).where(ACCOUNTS.c.upstream == bindparam("b_upstream"),
                                      ACCOUNTS.c.upstream_subject == bindparam("b_subject"))
FIND_ACCOUNT_BY_SUB = select(ACCOUNTS).where(ACCOUNTS.c.sub == bindparam("b_sub"))
INSERT_ACCOUNT = insert(ACCOUNTS)
UPDATE_PROFILE = (update(ACCOUNTS).where(ACCOUNTS.c.sub == bindparam("b_sub"))
                  .values(profile=bindparam("profile"), updated_at=bindparam("now")))
INSERT_SESSION = insert(SSO_SESSIONS)
RENEW_SESSION = (update(SSO_SESSIONS)
                 .where(SSO_SESSIONS.c.cookie_digest == bindparam("digest"), SSO_SESSIONS.c.ended_at.is_(None))
                 .values(auth_time=bindparam("auth_time"), acr=bindparam("acr"), amr=bindparam("amr"),
                         expires_at=bindparam("expires_at"), upstream_id_token=bindparam("upstream_id_token"),
                         upstream_refresh_token=bindparam("upstream_refresh_token")))
END_SESSION = (update(SSO_SESSIONS).where(SSO_SESSIONS.c.cookie_digest == bindparam("digest"))
               .values(ended_at=bindparam("now")))
REVOKE_SESSION_GRANTS = (update(GRANTS).where(GRANTS.c.sid == bindparam("b_sid"), GRANTS.c.revoked_at.is_(None))
                         .values(revoked_at=bindparam("now"), revoked_reason=bindparam("reason")))
FIND_CONSENT = select(CONSENTS.c.scopes).where(CONSENTS.c.client_id == bindparam("b_client"),
                                               CONSENTS.c.sub == bindparam("b_sub"))
INSERT_CONSENT = insert(CONSENTS)
UPDATE_CONSENT = (update(CONSENTS)
                  .where(CONSENTS.c.client_id == bindparam("b_client"), CONSENTS.c.sub == bindparam("b_sub"))
                  .values(scopes=bindparam("scopes"), granted_at=bindparam("now")))
INSERT_UPSTREAM_LOGIN = insert(UPSTREAM_LOGINS)
FIND_UPSTREAM_LOGIN = select(UPSTREAM_LOGINS).where(UPSTREAM_LOGINS.c.state_digest == bindparam("digest"))
CONSUME_UPSTREAM_LOGIN = (update(UPSTREAM_LOGINS)
                          .where(UPSTREAM_LOGINS.c.state_digest == bindparam("digest"),
                                 UPSTREAM_LOGINS.c.consumed_at.is_(None),
                                 UPSTREAM_LOGINS.c.expires_at > bindparam("now"))
                          .values(consumed_at=bindparam("now")))
INSERT_GRANT = insert(GRANTS)
INSERT_CODE = insert(CODES)


# -- pending sign-ins ---------------------------------------------------------------------------------

def keep_pending(connection, row: dict) -> None:
    connection.execute(INSERT_PENDING, row)


def find_pending(connection, digest: str):
    return connection.execute(FIND_PENDING, {"digest": digest}).mappings().first()


def finish_pending(connection, digest: str, answer: str | None) -> bool:
    """Atomic: exactly one request finishes a pending sign-in, even on a double submit."""
    finished = connection.execute(FINISH_PENDING, {"digest": digest, "now": int(time.time()), "answer": answer})
    return finished.rowcount == 1


def keep_answer(connection, digest: str, answer: str) -> None:
    connection.execute(KEEP_ANSWER, {"digest": digest, "answer": answer})


def save_params(connection, digest: str, params: dict) -> None:
    connection.execute(SAVE_PARAMS, {"digest": digest, "params": params})


# -- a person sent to an upstream ----------------------------------------------------------------------

def remember_upstream_login(connection, row: dict) -> None:
    connection.execute(INSERT_UPSTREAM_LOGIN, row)


@dataclass
class UpstreamLoginRecord:
    """A person sent to an upstream: what we expect back, and the pending sign-in it belongs to."""

    state_digest: str
    login_id: str
    upstream: str
    nonce: str | None
    code_verifier: str | None
    created_at: int
    expires_at: int
    consumed_at: int | None


def consume_upstream_login(connection, state_digest: str) -> UpstreamLoginRecord | None:
    """Atomic: a state answers one callback only (a replayed callback finds nothing)."""
    row = connection.execute(FIND_UPSTREAM_LOGIN, {"digest": state_digest}).mappings().first()
    if row is None:
        return None
    consumed = connection.execute(CONSUME_UPSTREAM_LOGIN, {"digest": state_digest, "now": int(time.time())})
    return UpstreamLoginRecord(**row) if consumed.rowcount == 1 else None


# -- who is signed in ---------------------------------------------------------------------------------

def find_session(connection, cookie_digest: str) -> SessionRecord | None:
    row = connection.execute(FIND_SESSION, {"digest": cookie_digest}).mappings().first()
    return SessionRecord(**row) if row is not None else None


def find_session_by_sid(connection, sid: str) -> SessionRecord | None:
    row = connection.execute(FIND_SESSION_BY_SID, {"b_sid": sid}).mappings().first()
    return SessionRecord(**row) if row is not None else None


def find_signed_in(connection, cookie_digest: str) -> tuple[SessionRecord, AccountRecord] | None:
    """The live SSO session of this cookie, with its account, in one read."""
    row = connection.execute(FIND_SIGNED_IN, {"digest": cookie_digest}).mappings().first()
    if row is None:
        return None
    session = SessionRecord(**{column.name: row["session__" + column.name] for column in SSO_SESSIONS.c})
    if not session.is_live:
        return None
    return session, AccountRecord(**{column.name: row[column.name] for column in ACCOUNTS.c})


def find_account(connection, sub: str) -> AccountRecord | None:
    row = connection.execute(FIND_ACCOUNT_BY_SUB, {"b_sub": sub}).mappings().first()
    return AccountRecord(**row) if row is not None else None


# -- recording a sign-in ------------------------------------------------------------------------------

@dataclass
class Recorded:
    session: SessionRecord
    account: AccountRecord
    cookie: str  # the value of the browser's session cookie


def account_of(connection, identity: Identity) -> AccountRecord | None:
    """Accounts are keyed on (upstream, upstream subject), never on an e-mail address."""
    row = connection.execute(FIND_ACCOUNT, {"b_upstream": identity.upstream, "b_subject": identity.subject}) \
        .mappings().first()
    return AccountRecord(**row) if row is not None else None


def upsert_account(connection, existing: AccountRecord | None, identity: Identity, now: int) -> AccountRecord:
    """The account, created or its profile brought up to date (an account created by another process
    at the same moment makes the insert fail: the caller runs the operation again, and finds it)."""
    if existing is None:
        account = AccountRecord(sub=random_token(16), upstream=identity.upstream, upstream_subject=identity.subject,
                                profile=identity.profile, created_at=now, updated_at=now)
        connection.execute(INSERT_ACCOUNT, vars(account))
        return account
    connection.execute(UPDATE_PROFILE, {"b_sub": existing.sub, "profile": identity.profile, "now": now})
    return replace(existing, profile=identity.profile, updated_at=now)


def record_sign_in(connection, identity: Identity, current: SessionRecord | None, current_cookie: str | None,
                   account: AccountRecord | None, lifetime: int, data_key: bytes) -> Recorded:
    """Inside a write: the person's account and this browser's SSO session.

    One browser, one session: the same person signing in again (prompt=login, max_age) renews the
    session they have, so that signing out ends every token issued in this browser; someone else
    signing in ends the previous person's session, and its tokens, first."""
    now = int(time.time())
    account = upsert_account(connection, account, identity, now)
    fresh = {"auth_time": identity.authenticated_at(now), "acr": identity.acr, "amr": identity.amr,
             "expires_at": now + lifetime, "upstream_id_token": identity.upstream_id_token,
             "upstream_refresh_token": seal(data_key, identity.upstream_refresh_token)}
    if current is not None and current.sub == account.sub:
        renewed = connection.execute(RENEW_SESSION, {"digest": current.cookie_digest, **fresh})
        if renewed.rowcount == 1:  # else ended meanwhile (a sign-out in another tab): it stays ended
            return Recorded(replace(current, **fresh), account, current_cookie)
    elif current is not None:
        end_session(connection, current, "another_person_signed_in")
    cookie = random_token(32)
    session = SessionRecord(cookie_digest=token_digest(cookie), sid=random_token(16), sub=account.sub,
                            upstream=identity.upstream, created_at=now, ended_at=None, **fresh)
    connection.execute(INSERT_SESSION, vars(session))
    return Recorded(session, account, cookie)


def end_session(connection, session: SessionRecord, reason: str) -> None:
    """Ends the browser session and revokes every grant made in it."""
    now = int(time.time())
    connection.execute(END_SESSION, {"digest": session.cookie_digest, "now": now})
    connection.execute(REVOKE_SESSION_GRANTS, {"b_sid": session.sid, "now": now, "reason": reason})


# -- what the OIDC front door writes ------------------------------------------------------------------

def consented_scopes(connection, client_id: str, sub: str) -> list[str] | None:
    return connection.execute(FIND_CONSENT, {"b_client": client_id, "b_sub": sub}).scalar()


def add_consent(connection, client_id: str, sub: str, scopes: list[str]) -> None:
    """The person allowed ``client_id`` these scopes, on top of what they allowed it before."""
    existing = consented_scopes(connection, client_id, sub)
    now = int(time.time())
    if existing is None:
        connection.execute(INSERT_CONSENT, {"client_id": client_id, "sub": sub, "scopes": sorted(set(scopes)),
                                            "granted_at": now})
    else:
        connection.execute(UPDATE_CONSENT, {"b_client": client_id, "b_sub": sub, "now": now,
                                            "scopes": sorted(set(scopes) | set(existing))})


def issue_grant_and_code(connection, grant_row: dict, code_row: dict) -> None:
    connection.execute(INSERT_GRANT, grant_row)
    connection.execute(INSERT_CODE, code_row)
