"""The upstream callback: one path per upstream (mix-up defence), each finishing the sign-in flow.

What we expect back (state, nonce, PKCE verifier, and which upstream) was kept in the database when
the person left, so any op-proxy process can take the callback, and a state works once only.
"""

from __future__ import annotations

import time

from quart import request
from sqlalchemy import update

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.security import token_digest
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.storage.models import UpstreamLogin
from op_proxy.upstreams.base import LoginFailed
from op_proxy.web import client_ip, render_page, use_locale


def register(app, connectors: dict) -> None:
    for connector in connectors.values():
        if connector.callback_path:
            app.add_url_rule(connector.callback_path, f"callback_{connector.name}", callback_for(connector.name),
                             methods=["GET", "POST"])


def callback_for(upstream: str):
    async def callback():
        return await handle_callback(services(), upstream)
    callback.__name__ = f"callback_{upstream}"
    return callback


async def remember_upstream_login(svc: Services, login_id: str, upstream: str, kept: dict) -> None:
    now = int(time.time())
    async with svc.db.transaction() as session:
        session.add(UpstreamLogin(state_digest=token_digest(kept["state"]), login_id=login_id, upstream=upstream,
                                  nonce=kept.get("nonce"), code_verifier=kept.get("code_verifier"), created_at=now,
                                  expires_at=now + svc.settings.tokens.pending_login_lifetime))


async def consume_upstream_login(svc: Services, state: str | None) -> UpstreamLogin | None:
    """Atomically: a state answers one callback only (a replayed callback finds nothing)."""
    if not state:
        return None
    digest = token_digest(state)
    async with svc.db.transaction() as session:
        login = await session.get(UpstreamLogin, digest)
        result = await session.execute(
            update(UpstreamLogin).where(UpstreamLogin.state_digest == digest, UpstreamLogin.consumed_at.is_(None),
                                        UpstreamLogin.expires_at > int(time.time()))
            .values(consumed_at=int(time.time())))
    return login if result.rowcount == 1 else None


def refused(title: str, message: str) -> PageError:
    return PageError(title, message, 400)


async def handle_callback(svc: Services, upstream: str):
    params = (await request.form if request.method == "POST" else request.args).to_dict()
    use_locale()
    login = await consume_upstream_login(svc, params.get("state"))
    if login is None:
        await audit.record(svc.db, "sign_in", outcome="failure", upstream=upstream, ip=client_ip(),
                           reason="unknown_or_used_state")
        raise refused(_("Sign-in not found"), _("This answer from the sign-in service is unknown, expired or was "
                                                "already used. Go back to the application and sign in again."))
    if login.upstream != upstream:
        await audit.record(svc.db, "sign_in", outcome="failure", upstream=upstream, ip=client_ip(),
                           reason="callback_at_another_upstream", expected=login.upstream)
        raise refused(_("Sign-in refused"), _("The answer arrived from a different sign-in service than the one "
                                              "you were sent to, so it was refused. Sign in again."))
    pending = await flow.load(svc, login.login_id)
    use_locale(pending.params.get("ui_locales"))
    connector = svc.connectors[upstream]
    try:
        identity = await connector.finish_login(params, {"nonce": login.nonce, "code_verifier": login.code_verifier})
    except LoginFailed as failure:
        return await upstream_failed(svc, pending, login.login_id, connector, failure)
    return await flow.complete(svc, pending, login.login_id, identity)


FAILURE_MESSAGES = {
    "cancelled": N_("You cancelled signing in at %(upstream)s."),
    "upstream_error": N_("%(upstream)s could not sign you in (%(error)s)."),
    "upstream_unavailable": N_("%(upstream)s cannot be reached right now. Try again in a few minutes."),
    "upstream_refused": N_("%(upstream)s sent an answer that could not be verified, so you were not signed in. "
                           "Try again; if it happens again, tell the administrator."),
}


async def upstream_failed(svc: Services, pending, login_id: str, connector, failure: LoginFailed):
    """A translated page that says what happened, with a way back; an audit event; nothing created."""
    error = getattr(failure, "error", None)
    await audit.record(svc.db, "sign_in", outcome="failure", client_id=pending.client_id, upstream=connector.name,
                       ip=client_ip(), reason=failure.reason, error=error, detail=getattr(failure, "detail", None))
    upstream = connector.display_name.get(use_locale(pending.params.get("ui_locales"))) or connector.name
    message = _(FAILURE_MESSAGES.get(failure.reason, FAILURE_MESSAGES["upstream_refused"]), upstream=upstream,
                error=error or "")
    if error == "duplicate_request":
        message = _("%(upstream)s says this sign-in was already submitted. Start again.", upstream=upstream)
    return await render_page("upstream_failed.html", 502 if failure.reason == "upstream_unavailable" else 400,
                             title=_("Not signed in"), message=message, retry_url=f"/login/{login_id}")
