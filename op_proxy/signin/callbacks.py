"""The upstream leg of a sign-in: sending the person to a callback connector's upstream, and its
callback (one path per upstream: mix-up defence), which finishes the sign-in flow.

The flow makes the ``state``; the connector puts it in its URL and says what else to keep
(``ConnectorData``). Both, and which upstream, are kept in the database when the person leaves, so
any op-proxy process can take the callback, and a state works once only.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

from quart import redirect, request

from op_proxy import audit, i18n
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.security import random_token, token_digest
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.pending import PendingSignIn
from op_proxy.storage import sign_ins
from op_proxy.storage.sign_ins import UpstreamLoginRecord
from op_proxy.upstreams.base import CallbackConnector, Connector, ConnectorData, LoginFailed, LoginHints, is_a
from op_proxy.web import client_ip, render_page, use_locale


def register(app, connectors: dict) -> None:
    for connector in connectors.values():
        if is_a(connector, CallbackConnector):
            app.add_url_rule(connector.callback_path, f"callback_{connector.name}", callback_for(connector.name),
                             methods=["GET", "POST"])


def callback_for(upstream: str):
    async def callback():
        return await handle_callback(services(), upstream)
    callback.__name__ = f"callback_{upstream}"
    return callback


async def go_to_upstream(svc: Services, pending: PendingSignIn, connector: CallbackConnector):
    """Send the person to ``connector``'s upstream with a fresh state, remembered for its callback."""
    sign_in = pending.request
    hints = LoginHints(login_hint=sign_in.login_hint, ui_locales=sign_in.ui_locales,
                       prompt=tuple(sign_in.prompt or ()), max_age=sign_in.max_age)
    state = random_token(24)
    try:
        url, data = await connector.login_url(state, hints)
    except LoginFailed as failure:  # discovery unreachable, malformed ...
        return await upstream_failed(svc, pending, pending.id, connector, failure)
    await remember_upstream_login(svc, pending.id, connector.name, state, data)
    return redirect(url, 303)


# The connector's data as the ``upstream_logins`` row keeps it, and back: here and nowhere else.

async def remember_upstream_login(svc: Services, login_id: str, upstream: str, state: str,
                                  data: ConnectorData) -> None:
    now = int(time.time())
    row = {"state_digest": token_digest(state), "login_id": login_id, "upstream": upstream,
           "nonce": data.nonce, "code_verifier": data.code_verifier, "created_at": now,
           "expires_at": now + svc.settings.tokens.pending_login_lifetime}

    def operation(connection):
        with svc.db.writing(connection):
            sign_ins.remember_upstream_login(connection, row)

    await svc.db.run(operation)


def connector_data(login: UpstreamLoginRecord) -> ConnectorData:
    return ConnectorData(nonce=login.nonce, code_verifier=login.code_verifier)


async def consume_upstream_login(svc: Services, state: str | None) -> UpstreamLoginRecord | None:
    """Atomically: a state answers one callback only (a replayed callback finds nothing)."""
    if not state:
        return None

    def operation(connection):
        with svc.db.writing(connection):
            return sign_ins.consume_upstream_login(connection, token_digest(state))

    return await svc.db.run(operation)


async def handle_callback(svc: Services, upstream: str):
    params = (await request.form if request.method == "POST" else request.args).to_dict()
    try:
        return await finish_at_callback(svc, upstream, params)
    except PageError as refusal:
        # The language links lead to the same message at an address of its own: following one must
        # not send the upstream's code and state here again.
        here = f"/signin/problem/{refusal.detail}" if refusal.detail in flow.PROBLEMS else request.path
        return await render_page("error.html", refusal.status, title=refusal.title, message=refusal.message,
                                 here=here)


async def finish_at_callback(svc: Services, upstream: str, params: dict):
    login = await consume_upstream_login(svc, params.get("state"))
    if login is None:
        await audit.record(svc.db, "sign_in", outcome="failure", upstream=upstream, ip=client_ip(),
                           reason="unknown_or_used_state")
        raise flow.problem("unknown_state")
    pending = await flow.find(svc, login.login_id)
    if pending is None:  # cleared away meanwhile
        await audit.record(svc.db, "sign_in", outcome="failure", upstream=upstream, ip=client_ip(),
                           reason="pending_login_gone")
        raise flow.problem("unknown_state")
    client_id = pending.client_id
    if not flow.belongs_to_this_browser(pending):
        # Someone else's state in this browser: a login CSRF attempt, or a link passed on.
        await audit.record(svc.db, "sign_in", outcome="failure", client_id=client_id, upstream=upstream,
                           ip=client_ip(), reason="state_from_another_browser")
        raise flow.problem("another_browser")
    use_locale(pending.request.ui_locales)
    if login.upstream != upstream:
        await audit.record(svc.db, "sign_in", outcome="failure", client_id=client_id, upstream=upstream,
                           ip=client_ip(), reason="callback_at_another_upstream", expected=login.upstream)
        raise flow.problem("mixed_up")
    pending = flow.still_open(pending)
    connector = svc.connectors[upstream]
    try:
        identity = await connector.handle_callback(connector_data(login), params)
        return await flow.complete(svc, pending, identity)
    except LoginFailed as failure:
        return await upstream_failed(svc, pending, login.login_id, connector, failure)


FAILURE_MESSAGES = {
    "cancelled": N_("You cancelled signing in at %(upstream)s."),
    "upstream_error": N_("%(upstream)s could not sign you in (%(error)s)."),
    "upstream_unavailable": N_("%(upstream)s cannot be reached right now. Try again in a few minutes."),
    "upstream_refused": N_("%(upstream)s sent an answer that could not be verified, so you were not signed in. "
                           "Try again; if it happens again, tell the administrator."),
}
# An upstream's error code as we show it (RFC 6749 §4.1.2.1 codes are short ASCII words); anything else
# it sent is not repeated on our page.
ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def shown_error(error) -> str | None:
    return error if isinstance(error, str) and ERROR_CODE.fullmatch(error) else None


async def upstream_failed(svc: Services, pending, login_id: str, connector: Connector, failure: LoginFailed):
    """A translated page that says what happened, with a way back; an audit event; nothing created."""
    error = shown_error(failure.error)
    await audit.record(svc.db, "sign_in", outcome="failure", client_id=pending.client_id, upstream=connector.name,
                       ip=client_ip(), reason=failure.reason, error=error, detail=failure.detail)
    return await failure_page(login_id, connector, failure.reason, error)


async def failure_page(login_id: str, connector: Connector, reason: str, error: str | None):
    upstream = connector.display_name.get(i18n.current_locale()) or connector.name
    if reason not in FAILURE_MESSAGES:
        reason = "upstream_refused"
    message = _(FAILURE_MESSAGES[reason], upstream=upstream, error=error or "")
    if error == "duplicate_request":
        message = _("%(upstream)s says this sign-in was already submitted. Start again.", upstream=upstream)
    # The language links show this page again from its own address, never the callback's.
    again = f"/login/{login_id}/failed/{connector.name}?" + urlencode({"reason": reason, "error": error or ""})
    return await render_page("upstream_failed.html", 502 if reason == "upstream_unavailable" else 400,
                             title=_("Not signed in"), message=message, retry_url=f"/login/{login_id}", here=again)
