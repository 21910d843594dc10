"""``/public/login.php`` and ``/public/logout.php``: the old gateway's URLs (also under
``/sso-authen/``, where same-host deployments mounted it), and the finisher that hands a signed-in
person back to a legacy app: ``?token=`` or a PHP session."""

from __future__ import annotations

import logging

from quart import Blueprint, redirect, request
from sqlalchemy import select

from op_proxy import audit
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.legacy import query_token
from op_proxy.legacy.php_session import PhpSessionStore, new_session_id
from op_proxy.legacy.users import find_or_create_user, user_info
from op_proxy.provider.finish import ask_user_handler
from op_proxy.security import decrypt
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.sessions import SESSION_COOKIE, account_by_sub, current_session, end_session
from op_proxy.signin.user_handler import NORMALIZED_FIELDS
from op_proxy.storage.models import Client, PendingLogin, SsoSession
from op_proxy.web import NO_STORE, client_ip, render_page, set_cookie, url_with, use_locale

blueprint = Blueprint("legacy", __name__)
logger = logging.getLogger(__name__)
LEGACY_MODES = ("query_token", "php_session")


async def legacy_client(svc: Services, client_id: str | None) -> Client:
    async with svc.db.session() as session:
        if client_id:
            client = await session.get(Client, client_id)
        else:  # the old auth guard links to login.php without a client_id
            client = await session.scalar(select(Client).where(Client.legacy_default.is_(True)))
    if client is None or not client.enabled or client.mode not in LEGACY_MODES:
        raise PageError(_("Unknown application"),
                        _("The application that sent you here is not registered. Contact its administrator."),
                        400, detail="unknown_legacy_client")
    return client


@blueprint.route("/public/login.php")
@blueprint.route("/sso-authen/public/login.php")
async def login():
    svc = services()
    use_locale()
    client = await legacy_client(svc, request.args.get("client_id"))
    redirect_uri = request.args.get("redirect_uri") or client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:  # exactly, as everywhere
        raise PageError(_("Invalid return address"),
                        _("The application asked to return you to an address it has not registered. "
                          "Contact its administrator."), 400, detail="invalid_redirect_uri")
    browser, new_browser = flow.browser_id()
    login_id = await flow.begin(svc, front="legacy", client_id=client.client_id, browser=browser,
                                params={"redirect_uri": redirect_uri, "state": request.args.get("state"),
                                        "ui_locales": request.args.get("ui_locales")})
    sso = await current_session(svc.db)
    if sso is not None and (not client.allowed_upstreams or sso.upstream in client.allowed_upstreams):
        response = await flow.resume(svc, await flow.load(svc, login_id, browser), login_id, sso)
    else:
        response = redirect(f"/login/{login_id}", 303)
    if new_browser:
        set_cookie(response, flow.BROWSER_COOKIE, browser)
    return response


@flow.front_door("legacy")
async def finish_legacy(svc: Services, pending: PendingLogin, login_id: str, sso: SsoSession):
    async with svc.db.session() as session:
        client = await session.get(Client, pending.client_id)
    if client is None or not client.enabled:
        raise PageError(_("Unknown application"), _("This application has been removed or disabled."))
    account = await account_by_sub(svc.db, sso.sub)
    app_user = await ask_user_handler(svc, client, sso, ["openid", "profile", "email", "org", "groups"])
    if not await flow.mark_finished(svc, login_id):
        raise PageError(_("Sign-in already finished"),
                        _("This sign-in has already been completed. Go back to the application."))
    params = pending.params
    if client.mode == "query_token":
        return await hand_back_token(svc, client, sso, account.profile, app_user or {}, params)
    return await hand_back_php_session(svc, client, sso, account.profile, app_user or {}, params)


def signing_key(svc: Services, client: Client) -> str:
    if client.legacy_use_global_key:
        if not svc.settings.legacy.global_key:
            raise PageError(_("The application could not sign you in"),
                            _("op-proxy is not configured for this application. Contact the administrator."), 500)
        return svc.settings.legacy.global_key
    return decrypt(svc.keyring.data_key(), client.legacy_key)


async def hand_back_token(svc, client, sso, profile: dict, app_user: dict, params: dict):
    """``redirect_uri?token=``: a bearer token in a URL, so it is short-lived, for one audience,
    never leaked by Referer, and audited every time (UPSTREAMS.md item 8)."""
    data = {**{name: profile.get(name) for name in NORMALIZED_FIELDS}, **app_user}
    token, jti = query_token.mint(key=signing_key(svc, client), issuer=svc.settings.issuer,
                                  client_id=client.client_id, data=data, lifetime=client.legacy_token_lifetime)
    await audit.record(svc.db, "legacy_token_issued", client_id=client.client_id, sub=sso.sub,
                       upstream=sso.upstream, ip=client_ip(), jti=jti)
    response = redirect(url_with(params["redirect_uri"], token=token, state=params.get("state")), 303)
    response.headers.update({**NO_STORE, "Referrer-Policy": "no-referrer"})
    return response


async def hand_back_php_session(svc, client, sso, profile: dict, app_user: dict, params: dict):
    settings = client.php_session
    user = await find_or_create_user(svc.db, sso.sub, profile)
    session_id = new_session_id()
    try:
        await PhpSessionStore(settings).write(session_id, {
            "user_is_logged_in": True, "user_info": {**user_info(user), **app_user}})
    except OSError as exc:  # the save path or its group, as the administrator set them
        logger.error("php_session of %s: cannot write a session in %s: %s", client.client_id,
                     settings.get("save_path"), exc.strerror)
        raise PageError(_("The application could not sign you in"),
                        _("op-proxy is not configured for this application. Contact the administrator."),
                        500, detail="php_session_unwritable") from None
    await audit.record(svc.db, "legacy_session_created", client_id=client.client_id, sub=sso.sub,
                       upstream=sso.upstream, ip=client_ip(), role=user.role)
    response = redirect(params["redirect_uri"], 303)
    response.headers.update(NO_STORE)
    response.set_cookie(settings.get("cookie_name", "PHPSESSID"), session_id, path=settings.get("cookie_path", "/"),
                        domain=settings.get("cookie_domain") or None, httponly=settings.get("cookie_httponly", True),
                        secure=settings.get("cookie_secure", svc.settings.server.secure_cookies),
                        samesite=settings.get("cookie_samesite", "Lax"))
    return response


@blueprint.route("/public/logout.php")
@blueprint.route("/sso-authen/public/logout.php")
async def logout():
    """Ends op-proxy's session (and the app's PHP session), then back to a registered URI only."""
    svc = services()
    use_locale()
    return_to = request.args.get("post_logout_redirect_uri")
    client = None
    if return_to is not None:
        async with svc.db.session() as session:
            clients = (await session.scalars(select(Client).where(Client.mode.in_(LEGACY_MODES)))).all()
        client = next((c for c in clients if c.enabled and return_to in c.post_logout_redirect_uris), None)
        if client is None:
            raise PageError(_("Invalid return address"),
                            _("The application asked to return you to an address it has not registered."))
    sso = await current_session(svc.db)
    if sso is not None:
        await end_session(svc.db, sso)
        await audit.record(svc.db, "sign_out", client_id=client.client_id if client else None, sub=sso.sub,
                           upstream=sso.upstream, ip=client_ip())
    response = redirect(return_to, 303) if return_to else await render_page("logged_out.html", client=None)
    response.delete_cookie(SESSION_COOKIE, path="/")
    if client is not None and client.mode == "php_session":
        settings = client.php_session
        cookie_name = settings.get("cookie_name", "PHPSESSID")
        if request.cookies.get(cookie_name):
            await PhpSessionStore(settings).destroy(request.cookies[cookie_name])
        response.delete_cookie(cookie_name, path=settings.get("cookie_path", "/"),
                               domain=settings.get("cookie_domain") or None)
    return response



