"""RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0).

The person is sent back only to a post-logout URI the client registered, exactly; without an
``id_token_hint`` proving which client asks, they confirm on a page of ours first.
"""

from __future__ import annotations

from quart import Blueprint, redirect, request

from op_proxy import audit
from op_proxy.clients.registry import find_client
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.keys.keyring import InvalidToken
from op_proxy.security import constant_time_equals, token_digest
from op_proxy.services import Services, services
from op_proxy.signin.sessions import SESSION_COOKIE, current_session, end_session
from op_proxy.signin.upstream_session import LOGOUT_DONE_PATH, logout_continuation, upstream_logout_redirect
from op_proxy.tokens.validation import id_token_hint_claims
from op_proxy.web import client_ip, render_page, url_with

blueprint = Blueprint("logout", __name__)


def hinted_claims(svc: Services, hint: str | None) -> dict | None:
    if not hint:
        return None
    try:
        return id_token_hint_claims(svc, hint)  # an expired ID token is still a fine hint
    except InvalidToken:
        raise PageError(_("Sign-out failed"),
                        _("The application sent a sign-out request we cannot verify.")) from None


async def requesting_client(svc: Services, args: dict, claims: dict | None):
    client_id = args.get("client_id")
    if claims is not None:
        audience = claims.get("aud")
        audience = [audience] if isinstance(audience, str) else audience or []
        if client_id and client_id not in audience:
            raise PageError(_("Sign-out failed"), _("The sign-out request names two different applications."))
        client_id = client_id or (audience[0] if audience else None)
    return await find_client(svc.db, client_id)


def logout_csrf_token(session_cookie: str) -> str:
    return token_digest("logout:" + session_cookie)


@blueprint.route("/logout", methods=["GET", "POST"])
async def logout():
    svc = services()
    args = (await request.form if request.method == "POST" else request.args).to_dict()
    claims = hinted_claims(svc, args.get("id_token_hint"))
    client = await requesting_client(svc, args, claims)
    return_to = args.get("post_logout_redirect_uri")
    if return_to is not None and (client is None or return_to not in client.post_logout_redirect_uris):
        raise PageError(_("Invalid return address"),
                        _("The application asked to return you to an address it has not registered."))

    sso = await current_session(svc.db)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    proven = claims is not None and (sso is None or claims.get("sid") == sso.sid)
    confirmed = request.method == "POST" and constant_time_equals(args.get("csrf", ""), logout_csrf_token(cookie))
    if sso is not None and not (proven or confirmed):
        return await render_page("logout_confirm.html", client=client, fields={
            k: v for k, v in args.items() if k in ("client_id", "post_logout_redirect_uri", "state", "ui_locales")
        }, csrf=logout_csrf_token(cookie))

    upstream_url = None
    if sso is not None:
        await end_session(svc.db, sso)
        await audit.record(svc.db, "sign_out", client_id=client.client_id if client else None, sub=sso.sub,
                           upstream=sso.upstream, ip=client_ip())
        upstream_url = await upstream_logout_redirect(svc, sso, return_to, args.get("state"),
                                                      client.client_id if client else None)
    if upstream_url:
        response = redirect(upstream_url, 303)  # sign out at the upstream too, then come back
    else:
        response = await back_to_client(return_to, args.get("state"), client)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def back_to_client(return_to: str | None, state: str | None, client):
    if return_to is not None:
        return redirect(url_with(return_to, state=state), 303)
    return await render_page("logged_out.html", client=client)


@blueprint.route(LOGOUT_DONE_PATH)
async def logout_done():
    """The upstream signed the person out too and sent them back here."""
    svc = services()
    continuation = logout_continuation(svc, request.args.get("state"))
    if continuation is None:
        return await render_page("logged_out.html", client=None)
    client = await find_client(svc.db, continuation.get("client_id"))
    return await back_to_client(continuation.get("return_to"), continuation.get("state"), client)
