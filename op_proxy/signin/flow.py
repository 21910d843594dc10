"""The sign-in flow: begun by a front door (``start``), finished by whichever process the person
reaches (``complete``), handed to the front door as a ``SignedIn``, and ended here (``end``) the way
the front door says with its ``Ending``.

The path of a sign-in, top to bottom: a front door calls ``start``; the person's step (a password
form, an upstream's callback) calls ``complete``, which records who signed in and asks the front
door how the sign-in ends; the front door answers with an ``Ending`` (its answer, what to write, the
application whose user handler is asked) or, when a step comes first (consent), with that page; then
``end`` asks the user handler, ends the pending sign-in once with the front door's writes, and gives
the answer. A front door never calls back into the flow to finish.

Each request runs its storage work as one operation (``Database.run``, SQLAlchemy Core, see
``op_proxy.storage.sign_ins``): a page reads its pending sign-in once; a password step records the
account, the SSO session and its audit row in one transaction, and ``end`` ends the pending sign-in,
writes what the front door gives (the OIDC code) and keeps the answer in a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from quart import make_response, redirect, request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.security import random_token, seal, token_digest, unseal
from op_proxy.services import Services
from op_proxy.signin import user_handler
from op_proxy.signin.pending import (
    REQUEST_TYPES,
    AdminSignIn,
    PendingSignIn,
    SignInRequest,
    from_row,
    new_pending,
    request_params,
    to_row,
)
from op_proxy.signin.sessions import SESSION_COOKIE
from op_proxy.storage import sign_ins
from op_proxy.storage.models import Client
from op_proxy.storage.operations import get_client, write_audit
from op_proxy.storage.sign_ins import AccountRecord, SessionRecord
from op_proxy.upstreams.base import Connector, Identity, LoginFailed, PasswordConnector, is_a
from op_proxy.web import client_ip, set_cookie, use_locale

BROWSER_COOKIE = "op_browser"


@dataclass
class SignedIn:
    """Who is signed in, as the flow hands it to a front door."""

    session: SessionRecord
    account: AccountRecord
    cookie: str | None = None  # the session cookie this sign-in gives the browser (None: it has one)
    app_user: dict | None = None  # the application's user handler's answer, once asked
    # A password step: its answer is kept, sealed, for this browser to fetch again (``replay``).
    replayable: bool = False
    answer_kept: bool = False

    @property
    def person(self) -> str:
        """Who signed in, as the kept answer remembers them (never the upstream subject itself)."""
        return token_digest(f"{self.account.upstream}:{self.account.upstream_subject}")


@dataclass
class Ending:
    """How a front door ends a sign-in, as its finisher hands it to the flow (``end``).

    ``answer``: the response, made before the end so that a browser that asks again gets the same
    one (the OIDC redirect with its code); or ``answer_after()``, which makes it once the sign-in has
    ended (a legacy token, an admin session). ``writes(connection)`` and ``audit_entries`` are
    written in the transaction that ends the pending sign-in; ``amended`` is the request as the front
    door completed it (an admin test's result); ``writes`` runs after the user handler was asked, so
    it may read ``SignedIn.app_user``. ``application``: (client, scopes) whose user handler
    is asked first, its answer kept on the ``SignedIn``. ``if_ended_before()``: the answer when the
    sign-in had ended already (a double submit); by default the "already finished" page."""

    answer: object | None = None
    answer_after: Callable[[], Awaitable] | None = None
    writes: Callable | None = None
    audit_entries: tuple[dict, ...] = ()
    amended: SignInRequest | None = None
    application: tuple[Client, list[str]] | None = None
    if_ended_before: Callable[[], Awaitable] | None = None


# How a signed-in person is handed to the front door that began the sign-in: one finisher per kind of
# request, named where the application is made (op_proxy/app.py) and held by the services. It returns
# an ``Ending``, or a response when a step of its own comes before the end (consent) or the
# application must be told no (a different person signed in).
Finisher = Callable[[Services, PendingSignIn, SignedIn], Awaitable]
FrontDoors = dict[type[SignInRequest], Finisher]


def front_doors(finishers: FrontDoors) -> FrontDoors:
    """``finishers``, checked to finish every kind of request (at start-up, not when a person is back)."""
    missing = [kind.__name__ for kind in REQUEST_TYPES.values() if kind not in finishers]
    if missing:
        raise ValueError(f"no front door finishes {', '.join(missing)}")
    return finishers


def browser_id() -> tuple[str, bool]:
    """A random value that ties a pending login to the browser that began it (login CSRF)."""
    existing = request.cookies.get(BROWSER_COOKIE)
    return (existing, False) if existing else (random_token(24), True)


# -- beginning ----------------------------------------------------------------------------------------

async def start(svc: Services, sign_in: SignInRequest, *, signed_in: SignedIn | None = None):
    """Keep ``sign_in`` for this browser, then: hand it straight back to its front door when the person
    is ``signed_in`` already, or send the browser to its first step."""
    browser, new_browser = browser_id()
    pending = new_pending(sign_in, browser, svc.settings.tokens.pending_login_lifetime)
    row = to_row(pending)

    def operation(connection):
        with svc.db.writing(connection):
            sign_ins.keep_pending(connection, row)

    await svc.db.run(operation)
    if signed_in is not None:
        response = await resume(svc, pending, signed_in)
    else:
        response = redirect(await first_step(svc, pending), 303)
    if new_browser:
        set_cookie(response, BROWSER_COOKIE, browser)
    return response


async def requesting_client(svc: Services, pending: PendingSignIn) -> Client | None:
    """The application that asks (enabled or not: the front door refuses a disabled one when it finishes)."""
    return await get_client(svc.db, pending.client_id, enabled_only=False)


async def allowed_upstreams(svc: Services, pending: PendingSignIn, client: Client | None = None) -> list:
    if isinstance(pending.request, AdminSignIn):
        # The panel is entered only through the upstreams trusted for admin groups ([admin] sso_upstreams).
        return [svc.connectors[name] for name in svc.settings.admin.sso_upstreams if name in svc.connectors]
    client = client or await requesting_client(svc, pending)
    allowed = client.allowed_upstreams if client and client.allowed_upstreams else list(svc.connectors)
    return [svc.connectors[name] for name in allowed if name in svc.connectors]


def upstream_path(pending: PendingSignIn, connector: Connector) -> str:
    """Where the person signs in at ``connector``: our own password form, or on the way to the upstream."""
    if is_a(connector, PasswordConnector):
        return f"/login/{pending.id}/password/{connector.name}"
    return f"/login/{pending.id}/{connector.name}"


async def first_step(svc: Services, pending: PendingSignIn) -> str:
    """The chooser, unless there is nothing to choose (one upstream allowed, or the application named
    one): then that upstream at once, without a hop through the chooser's address."""
    upstreams = await allowed_upstreams(svc, pending)
    hint = pending.request.idp_hint
    chosen = [u for u in upstreams if u.name == hint] if hint else upstreams
    if len(chosen) == 1:
        return upstream_path(pending, chosen[0])
    return f"/login/{pending.id}"  # the chooser (which also says why a hinted upstream is refused)


# -- finding it again ---------------------------------------------------------------------------------

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


async def find(svc: Services, login_id: str) -> PendingSignIn | None:
    row = await svc.db.run(sign_ins.find_pending, token_digest(login_id))
    return from_row(login_id, row) if row is not None else None


def belongs_to_this_browser(pending: PendingSignIn | None, browser: str | None = None) -> bool:
    return pending is not None and pending.belongs_to(browser or request.cookies.get(BROWSER_COOKIE))


def still_open(pending: PendingSignIn | None, browser: str | None = None) -> PendingSignIn:
    """``pending``, if it exists, is still open, and belongs to this browser. Its pages speak the
    language the application asked for (ui_locales), the person chose, or the browser prefers."""
    if not belongs_to_this_browser(pending, browser):
        raise problem("not_found")
    use_locale(pending.request.ui_locales)
    if pending.finished_at is not None:
        raise problem("finished")
    if pending.expires_at <= time.time():
        raise problem("expired")
    return pending


async def load(svc: Services, login_id: str, browser: str | None = None) -> PendingSignIn:
    return still_open(await find(svc, login_id), browser)


async def current_sign_in(svc: Services) -> SignedIn | None:
    """Who is signed in in this browser (its live SSO session and account), if anyone."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    found = await svc.db.run(sign_ins.find_signed_in, token_digest(cookie))
    return SignedIn(*found) if found is not None else None


# -- finishing ----------------------------------------------------------------------------------------

class NotRecorded(LoginFailed):
    """The database refused what the upstream said (it is bounded before, so this is a last resort):
    nothing was written, the person sees the upstream-failure page."""

    def __init__(self, detail: str):
        super().__init__("upstream_refused")
        self.detail = detail


async def complete(svc: Services, pending: PendingSignIn, identity: Identity, *, replayable: bool = False):
    """The upstream said who the person is: account, SSO session and audit row (together or not at
    all), then back to the front door. ``replayable``: the answer is kept a little while, sealed, for
    this browser to fetch again (see ``replay``)."""
    signed_in = await record(svc, pending, identity)
    signed_in.replayable = replayable
    response = await resume(svc, pending, signed_in)
    if replayable and not signed_in.answer_kept:  # a front door that answers after finishing
        await keep_answer(svc, pending, signed_in, response)
    set_cookie(response, SESSION_COOKIE, signed_in.cookie, max_age=svc.settings.server.session_lifetime)
    return response


async def record(svc: Services, pending: PendingSignIn, identity: Identity) -> SignedIn:
    cookie = request.cookies.get(SESSION_COOKIE)
    lifetime, data_key = svc.settings.server.session_lifetime, svc.keyring.data_key()
    entry = audit.entry("sign_in", client_id=pending.client_id, upstream=identity.upstream, ip=client_ip())

    def operation(connection):
        current = sign_ins.find_session(connection, token_digest(cookie)) if cookie else None
        account = sign_ins.account_of(connection, identity)
        with svc.db.writing(connection):
            recorded = sign_ins.record_sign_in(connection, identity, current if current and current.is_live else None,
                                               cookie, account, lifetime, data_key)
            write_audit(connection, {**entry, "sub": recorded.account.sub})
        return recorded

    for attempt in range(2):
        try:
            recorded = await svc.db.run(operation)
            break
        except IntegrityError:  # another process created the same account at the same moment: read it
            if attempt == 1:
                raise NotRecorded("the database refused the sign-in (IntegrityError)") from None
        except SQLAlchemyError as exc:  # never the statement or its parameters: they hold what the upstream sent
            raise NotRecorded(f"the database refused the sign-in ({type(exc).__name__})") from None
    audit.announce({**entry, "sub": recorded.account.sub})
    return SignedIn(recorded.session, recorded.account, cookie=recorded.cookie)


async def resume(svc: Services, pending: PendingSignIn, signed_in: SignedIn):
    """The front door's answer for ``signed_in``: the sign-in ended as its ``Ending`` says, or the page
    of a step that comes first."""
    outcome = await svc.front_doors[type(pending.request)](svc, pending, signed_in)
    return await end(svc, pending, signed_in, outcome) if isinstance(outcome, Ending) else outcome


async def end(svc: Services, pending: PendingSignIn, signed_in: SignedIn, ending: Ending):
    """End the sign-in as the front door's ``ending`` says: ask the application's user handler, end the
    pending sign-in exactly once with the front door's writes, then give its answer. Also called by a
    front door's own step that ends it (the consent page)."""
    if ending.application is not None:
        client, scopes = ending.application
        signed_in.app_user = await user_handler.app_user_for(svc, client, signed_in, scopes)
    if not await finish(svc, pending, signed_in, ending.answer, writes=ending.writes,
                        audit_entries=ending.audit_entries, amended=ending.amended):
        if ending.if_ended_before is not None:
            return await ending.if_ended_before()
        raise problem("finished")
    return ending.answer if ending.answer_after is None else await ending.answer_after()


async def finish(svc: Services, pending: PendingSignIn, signed_in: SignedIn, answer=None, *,
                 writes: Callable | None = None, audit_entries: tuple[dict, ...] = (),
                 amended: SignInRequest | None = None) -> bool:
    """End the pending sign-in, exactly once even on a double submit, in one transaction with the
    front door's ``writes(connection)`` and audit rows, keeping ``answer`` (the response the front door
    will give) for a retry, and ``amended``, the request as the front door completed it (an admin
    test's result). False, with nothing written, if it was ended already."""
    sealed = await seal_answer(svc, signed_in, answer) if answer is not None and signed_in.replayable else None
    params = request_params(amended) if amended is not None else None

    def operation(connection):
        with svc.db.writing(connection):
            if not sign_ins.finish_pending(connection, pending.digest, sealed):
                return False
            if params is not None:
                sign_ins.save_params(connection, pending.digest, params)
            if writes is not None:
                writes(connection)
            for entry in audit_entries:
                write_audit(connection, entry)
        return True

    finished = await svc.db.run(operation)
    if finished:
        signed_in.answer_kept = sealed is not None
        for entry in audit_entries:
            audit.announce(entry)
    return finished


# -- a finished step asked again ----------------------------------------------------------------------
# A password POST whose answer never reached the browser (a dropped connection, a killed process) is
# sent again by the browser. Within REPLAY_WINDOW of finishing, the same browser, proving again that it
# is the same person, gets the same answer (the same redirect, the same code): never a second code, and
# nothing for another browser, which only ever sees "Sign-in not found".

REPLAY_WINDOW = 120
KEPT_HEADERS = ("location", "content-type", "set-cookie", "referrer-policy", "cache-control", "pragma")


async def seal_answer(svc: Services, signed_in: SignedIn, response) -> str:
    """The answer as kept: the person it was for, the response, and the session cookie it gives
    (set on the response by ``complete`` after this)."""
    answer = {"subject": signed_in.person, "status": response.status_code,
              "headers": [[k, v] for k, v in response.headers.items() if k.lower() in KEPT_HEADERS],
              "body": await response.get_data(as_text=True), "session_cookie": signed_in.cookie}
    return seal(svc.keyring.data_key(), json.dumps(answer))


async def keep_answer(svc: Services, pending: PendingSignIn, signed_in: SignedIn, response) -> None:
    sealed = await seal_answer(svc, signed_in, response)

    def operation(connection):
        with svc.db.writing(connection):
            sign_ins.keep_answer(connection, pending.digest, sealed)

    await svc.db.run(operation)


def kept_answer(svc: Services, pending: PendingSignIn | None) -> dict | None:
    """The answer this browser was given when it finished this sign-in, if that was moments ago."""
    if not belongs_to_this_browser(pending) or pending.answer is None or pending.finished_at is None \
            or time.time() - pending.finished_at > REPLAY_WINDOW:
        return None
    return json.loads(unseal(svc.keyring.data_key(), pending.answer))


async def replay(svc: Services, answer: dict, identity: Identity):
    """The kept answer, if ``identity`` is the person who finished the sign-in; else None."""
    if answer["subject"] != token_digest(f"{identity.upstream}:{identity.subject}"):
        return None
    response = await make_response(answer["body"], answer["status"])
    for name, value in answer["headers"]:
        if name.lower() == "set-cookie":
            response.headers.add(name, value)
        else:
            response.headers[name] = value
    if answer.get("session_cookie"):
        set_cookie(response, SESSION_COOKIE, answer["session_cookie"], max_age=svc.settings.server.session_lifetime)
    return response
