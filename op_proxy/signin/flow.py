"""The pending login: created by a front door, finished by whichever process the person reaches."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from quart import redirect, request
from sqlalchemy import update

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.security import random_token, token_digest
from op_proxy.services import Services
from op_proxy.signin.sessions import SESSION_COOKIE, find_or_create_account, sign_in_session
from op_proxy.storage.models import PendingLogin, SsoSession
from op_proxy.upstreams.base import Identity
from op_proxy.web import client_ip, set_cookie

BROWSER_COOKIE = "op_browser"

# Front doors register how a finished sign-in is handed back to them ("oidc", later "legacy").
Finisher = Callable[[Services, PendingLogin, str, SsoSession], Awaitable]
FRONT_DOORS: dict[str, Finisher] = {}


def front_door(name: str):
    def register(finisher: Finisher) -> Finisher:
        FRONT_DOORS[name] = finisher
        return finisher
    return register


def browser_id() -> tuple[str, bool]:
    """A random value that ties a pending login to the browser that began it (login CSRF)."""
    existing = request.cookies.get(BROWSER_COOKIE)
    return (existing, False) if existing else (random_token(24), True)


async def begin(svc: Services, *, front: str, client_id: str, params: dict, browser: str) -> str:
    now = int(time.time())
    login_id = random_token(24)
    async with svc.db.transaction() as session:
        session.add(PendingLogin(
            id_digest=token_digest(login_id), client_id=client_id, params={**params, "front_door": front},
            browser_digest=token_digest(browser), created_at=now,
            expires_at=now + svc.settings.tokens.pending_login_lifetime,
        ))
    return login_id


async def load(svc: Services, login_id: str, browser: str | None = None) -> PendingLogin:
    """The pending login, if it exists, is still open, and belongs to this browser."""
    async with svc.db.session() as session:
        pending = await session.get(PendingLogin, token_digest(login_id))
    browser = browser or request.cookies.get(BROWSER_COOKIE)
    if pending is None or browser is None or token_digest(browser) != pending.browser_digest:
        raise PageError(_("Sign-in not found"),
                        _("This sign-in link is not valid in this browser. Go back to the application "
                          "and sign in again."), 400)
    if pending.finished_at is not None:
        raise PageError(_("Sign-in already finished"),
                        _("This sign-in has already been completed. Go back to the application."), 400)
    if pending.expires_at <= time.time():
        raise PageError(_("Sign-in expired"),
                        _("You took too long to sign in. Go back to the application and try again."), 400)
    return pending


async def mark_finished(svc: Services, login_id: str) -> bool:
    """Atomic: exactly one request finishes a pending login, even on a double submit."""
    async with svc.db.transaction() as session:
        result = await session.execute(
            update(PendingLogin)
            .where(PendingLogin.id_digest == token_digest(login_id), PendingLogin.finished_at.is_(None))
            .values(finished_at=int(time.time())))
    return result.rowcount == 1


async def resume(svc: Services, pending: PendingLogin, login_id: str, sso: SsoSession):
    return await FRONT_DOORS[pending.params["front_door"]](svc, pending, login_id, sso)


def chooser_redirect(login_id: str):
    return redirect(f"/login/{login_id}", 303)


async def complete(svc: Services, pending: PendingLogin, login_id: str, identity: Identity):
    """The upstream said who the person is: account, SSO session, audit, then back to the front door."""
    account = await find_or_create_account(svc.db, identity)
    cookie, sso = await sign_in_session(svc.db, account, identity, svc.settings.server.session_lifetime,
                                        svc.keyring.data_key())
    await audit.record(svc.db, "sign_in", client_id=pending.client_id, sub=account.sub,
                       upstream=identity.upstream, ip=client_ip())
    response = await resume(svc, pending, login_id, sso)
    set_cookie(response, SESSION_COOKIE, cookie, max_age=svc.settings.server.session_lifetime)
    return response
