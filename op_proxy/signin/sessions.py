"""SSO sessions: one per browser sign-in, in the database; the browser holds a random cookie.

Written when a sign-in is recorded (``storage.sign_ins.record_sign_in``, from ``flow.complete``);
read and ended here, by the pages that need to know who is signed in.
"""

from __future__ import annotations

from quart import request

from op_proxy.security import token_digest
from op_proxy.storage import sign_ins
from op_proxy.storage.sign_ins import AccountRecord, SessionRecord

SESSION_COOKIE = "op_session"


async def current_session(db) -> SessionRecord | None:
    """This browser's live SSO session, if it has one."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    session = await db.run(sign_ins.find_session, token_digest(cookie))
    return session if session is not None and session.is_live else None


async def end_session(db, sso: SessionRecord, reason: str = "logout") -> None:
    """Ends the browser session and revokes every grant made in it."""
    def operation(connection):
        with db.writing(connection):
            sign_ins.end_session(connection, sso, reason)

    await db.run(operation)


async def session_by_sid(db, sid: str) -> SessionRecord | None:
    return await db.run(sign_ins.find_session_by_sid, sid)


async def account_by_sub(db, sub: str) -> AccountRecord | None:
    return await db.run(sign_ins.find_account, sub)
