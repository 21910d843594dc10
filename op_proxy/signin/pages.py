"""The pages a person sees while signing in: the upstream chooser and the password form."""

from __future__ import annotations

from quart import Blueprint, redirect, request

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.callbacks import failure_page, go_to_upstream, shown_error, upstream_failed
from op_proxy.signin.pending import PendingSignIn
from op_proxy.upstreams.base import LoginFailed, PasswordConnector, is_a
from op_proxy.web import client_ip, forms_lead_only_to, render_page

blueprint = Blueprint("signin", __name__)


def not_available() -> PageError:
    return PageError(_("Sign-in method not available"),
                     _("This application does not accept that way of signing in. Choose another."), 403)


@blueprint.route("/login/<login_id>")
async def chooser(login_id: str):
    svc = services()
    pending = await flow.load(svc, login_id)
    upstreams = await flow.allowed_upstreams(svc, pending)
    hint = pending.request.idp_hint
    if hint:
        # idp_hint (kc_idp_hint for apps moving from Keycloak) skips the chooser, within the allow-list.
        if hint not in {u.name for u in upstreams}:
            raise PageError(_("Sign-in method not allowed"),
                            _("This application does not accept that way of signing in."), 403)
        return redirect(flow.upstream_path(pending, next(u for u in upstreams if u.name == hint)), 303)
    if len(upstreams) == 1:
        return redirect(flow.upstream_path(pending, upstreams[0]), 303)
    return await render_page("chooser.html", login_id=login_id, upstreams=upstreams)


@blueprint.route("/login/<login_id>/<upstream>")
async def start_upstream(login_id: str, upstream: str):
    svc = services()
    pending = await flow.load(svc, login_id)
    connector = await allowed_connector(svc, pending, upstream)
    if is_a(connector, PasswordConnector):
        return redirect(flow.upstream_path(pending, connector), 303)
    return await go_to_upstream(svc, pending, connector)


async def allowed_connector(svc: Services, pending: PendingSignIn, upstream: str):
    connectors = {c.name: c for c in await flow.allowed_upstreams(svc, pending)}
    if upstream not in connectors:
        raise not_available()
    return connectors[upstream]


@blueprint.route("/signin/problem/<kind>")
async def problem_page(kind: str):
    """Why a sign-in could not go on, shown again (in another language, say) without repeating the
    request that met the problem."""
    if kind not in flow.PROBLEMS:
        kind = "not_found"
    raise flow.problem(kind)


@blueprint.route("/login/<login_id>/failed/<upstream>")
async def failed_page(login_id: str, upstream: str):
    """An upstream's refusal, shown again from its own address (the callback's carried a code)."""
    svc = services()
    await flow.load(svc, login_id)
    if upstream not in svc.connectors:
        raise flow.problem("not_found")
    return await failure_page(login_id, svc.connectors[upstream], request.args.get("reason", ""),
                              shown_error(request.args.get("error")))


@blueprint.route("/login/<login_id>/password/<upstream>", methods=["GET", "POST"])
async def password_form(login_id: str, upstream: str):
    svc = services()
    found = await flow.find(svc, login_id)  # read once per request, whatever follows
    if request.method == "POST":
        again = await answer_again(svc, found, upstream)
        if again is not None:
            return again
    pending = flow.still_open(found)
    client = await flow.requesting_client(svc, pending)  # once per request
    upstreams = await flow.allowed_upstreams(svc, pending, client)
    connector = next((u for u in upstreams if u.name == upstream), None)
    if connector is None:
        raise not_available()
    if not is_a(connector, PasswordConnector):
        raise PageError(_("Sign-in method not available"), _("This sign-in method has no password form."), 404)
    page = {"login_id": login_id, "upstream": connector, "client": client if client and client.enabled else None,
            "choose_another": len(upstreams) > 1 and not pending.request.idp_hint}
    if request.method == "GET":
        return forms_lead_only_to(await render_page("password.html", username=pending.request.login_hint or "",
                                                    error=None, **page), pending.request.answered_at())
    form = (await request.form).to_dict()
    try:
        identity = await connector.login(form.get("username", ""), form.get("password", ""))
    except LoginFailed:
        await audit.record(svc.db, "sign_in", outcome="failure", client_id=pending.client_id,
                           upstream=connector.name, ip=client_ip(), reason="wrong_password",
                           username=form.get("username", "")[:100])  # who tried: the audit log's "who"
        return forms_lead_only_to(await render_page("password.html", 401, username=form.get("username", ""),
                                                    error=_("Wrong username or password. Try again."), **page),
                                  pending.request.answered_at())
    try:
        return await flow.complete(svc, pending, identity, replayable=True)
    except LoginFailed as failure:
        return await upstream_failed(svc, pending, login_id, connector, failure)


async def answer_again(svc: Services, pending: PendingSignIn | None, upstream: str):
    """A password POST for a sign-in this browser finished moments ago (its answer was lost on the
    way): the same answer again, if the password proves it is the same person (flow.replay)."""
    answer = flow.kept_answer(svc, pending)
    connector = svc.connectors.get(upstream)
    if answer is None or not is_a(connector, PasswordConnector):
        return None
    form = await request.form
    try:
        identity = await connector.login(form.get("username", ""), form.get("password", ""))
    except LoginFailed:
        return None
    return await flow.replay(svc, answer, identity)
