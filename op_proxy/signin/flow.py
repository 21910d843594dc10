"""The pending login: created by a front door, finished by whichever process the person reaches."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

from quart import make_response, redirect, request
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.security import random_token, seal, token_digest, unseal
from op_proxy.services import Services
from op_proxy.signin.sessions import SESSION_COOKIE, record_sign_in
from op_proxy.storage.models import PendingLogin, SsoSession
from op_proxy.upstreams.base import Identity, LoginFailed
from op_proxy.web import client_ip, set_cookie, use_locale

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


# Why a sign-in cannot go on, as a page: (title, message), translated when shown. Each has an address
# of its own (/signin/problem/<kind>), which the language links of a refused callback lead to, so that
# switching language never sends the upstream's code and state again.
PROBLEMS = {
    "not_found": (N_("Sign-in not found"), N_("This sign-in link is not valid in this browser. Go back to the "
                                              "application and sign in again.")),
    "finished": (N_("Sign-in already finished"), N_("This sign-in has already been completed. Go back to the "
                                                    "application.")),
    "expired": (N_("Sign-in expired"), N_("You took too long to sign in. Go back to the application and try "
                                          "again.")),
    "unknown_state": (N_("Sign-in not found"), N_("This answer from the sign-in service is unknown, expired or was "
                                                  "already used. Go back to the application and sign in again.")),
    "another_browser": (N_("Sign-in refused"), N_("This answer from the sign-in service belongs to a sign-in begun "
                                                  "in another browser, so it was refused. Go back to the "
                                                  "application and sign in again.")),
    "mixed_up": (N_("Sign-in refused"), N_("The answer arrived from a different sign-in service than the one you "
                                           "were sent to, so it was refused. Sign in again.")),
}


def problem(kind: str) -> PageError:
    """The page for ``kind``, in the language already chosen for this request (use_locale)."""
    title, message = PROBLEMS[kind]
    return PageError(_(title), _(message), 400, detail=kind)


async def find(svc: Services, login_id: str) -> PendingLogin | None:
    async with svc.db.session() as session:
        return await session.get(PendingLogin, token_digest(login_id))


def belongs_to_this_browser(pending: PendingLogin | None, browser: str | None = None) -> bool:
    browser = browser or request.cookies.get(BROWSER_COOKIE)
    return pending is not None and browser is not None and token_digest(browser) == pending.browser_digest


async def load(svc: Services, login_id: str, browser: str | None = None) -> PendingLogin:
    """The pending login, if it exists, is still open, and belongs to this browser. Its pages speak
    the language the application asked for (ui_locales), the person chose, or the browser prefers."""
    pending = await find(svc, login_id)
    if not belongs_to_this_browser(pending, browser):
        use_locale()
        raise problem("not_found")
    use_locale(pending.params.get("ui_locales"))
    if pending.finished_at is not None:
        raise problem("finished")
    if pending.expires_at <= time.time():
        raise problem("expired")
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


class NotRecorded(LoginFailed):
    """The database refused what the upstream said (it is bounded before, so this is a last resort):
    nothing was written, the person sees the upstream-failure page."""

    def __init__(self, detail: str):
        super().__init__("upstream_refused")
        self.detail = detail


async def complete(svc: Services, pending: PendingLogin, login_id: str, identity: Identity, *,
                   replayable: bool = False):
    """The upstream said who the person is: account and SSO session (together or not at all), audit,
    then back to the front door. ``replayable``: the answer is kept a little while, sealed, for this
    browser to fetch again (see ``replay``)."""
    try:
        account, cookie, sso = await record_sign_in(svc.db, identity, svc.settings.server.session_lifetime,
                                                    svc.keyring.data_key())
    except SQLAlchemyError as exc:  # never the statement or its parameters: they hold what the upstream sent
        raise NotRecorded(f"the database refused the sign-in ({type(exc).__name__})") from None
    await audit.record(svc.db, "sign_in", client_id=pending.client_id, sub=account.sub,
                       upstream=identity.upstream, ip=client_ip())
    response = await resume(svc, pending, login_id, sso)
    set_cookie(response, SESSION_COOKIE, cookie, max_age=svc.settings.server.session_lifetime)
    if replayable:
        await keep_outcome(svc, login_id, identity, response)
    return response


# -- a finished step asked again ----------------------------------------------------------------------
# A password POST whose answer never reached the browser (a dropped connection, a killed process) is
# sent again by the browser. Within REPLAY_WINDOW of finishing, the same browser, proving again that it
# is the same person, gets the same answer (the same redirect, the same code): never a second code, and
# nothing for another browser, which only ever sees "Sign-in not found".

REPLAY_WINDOW = 120
KEPT_HEADERS = ("location", "content-type", "set-cookie", "referrer-policy", "cache-control", "pragma")


async def keep_outcome(svc: Services, login_id: str, identity: Identity, response) -> None:
    outcome = {"subject": token_digest(f"{identity.upstream}:{identity.subject}"), "status": response.status_code,
               "headers": [[k, v] for k, v in response.headers.items() if k.lower() in KEPT_HEADERS],
               "body": await response.get_data(as_text=True)}
    async with svc.db.transaction() as session:
        await session.execute(update(PendingLogin).where(PendingLogin.id_digest == token_digest(login_id),
                                                         PendingLogin.finished_at.is_not(None))
                              .values(outcome=seal(svc.keyring.data_key(), json.dumps(outcome))))


async def kept_outcome(svc: Services, login_id: str) -> dict | None:
    """The answer this browser was given when it finished this sign-in, if that was moments ago."""
    pending = await find(svc, login_id)
    if not belongs_to_this_browser(pending) or pending.outcome is None or pending.finished_at is None \
            or time.time() - pending.finished_at > REPLAY_WINDOW:
        return None
    return json.loads(unseal(svc.keyring.data_key(), pending.outcome))


async def replay(outcome: dict, identity: Identity):
    """The kept answer, if ``identity`` is the person who finished the sign-in; else None."""
    if outcome["subject"] != token_digest(f"{identity.upstream}:{identity.subject}"):
        return None
    response = await make_response(outcome["body"], outcome["status"])
    for name, value in outcome["headers"]:
        if name.lower() == "set-cookie":
            response.headers.add(name, value)
        else:
            response.headers[name] = value
    return response
