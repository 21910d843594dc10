"""``/public/login.php`` and ``/public/logout.php``: the old gateway's URLs (also under
``/sso-authen/``, where same-host deployments mounted it), and the finisher that hands a signed-in
person back to a legacy app: ``?token=`` or a PHP session."""

from __future__ import annotations

import logging

from quart import Blueprint, redirect, request
from sqlalchemy import select

from op_proxy import audit
from op_proxy.clients.registry import find_client
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.legacy import query_token
from op_proxy.legacy.php_session import PhpSessionStore, new_session_id, store_errors
from op_proxy.legacy.users import find_or_create_user, user_info
from op_proxy.security import constant_time_equals, decrypt, token_digest
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.flow import SignedIn
from op_proxy.signin.pending import LegacyRequest, PendingSignIn
from op_proxy.signin.sessions import SESSION_COOKIE, current_session, end_session
from op_proxy.signin.user_handler import normalized_user
from op_proxy.storage.models import Client
from op_proxy.web import NO_STORE, client_ip, render_page, url_with

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
    client = await legacy_client(svc, request.args.get("client_id"))
    redirect_uri = request.args.get("redirect_uri") or client.redirect_uris[0]
    if redirect_uri not in client.redirect_uris:  # exactly, as everywhere
        raise PageError(_("Invalid return address"),
                        _("The application asked to return you to an address it has not registered. "
                          "Contact its administrator."), 400, detail="invalid_redirect_uri")
    sign_in = LegacyRequest(client_id=client.client_id, redirect_uri=redirect_uri, state=request.args.get("state"),
                            ui_locales=request.args.get("ui_locales"))
    signed_in = await flow.current_sign_in(svc)
    accepted = signed_in is not None and (not client.allowed_upstreams
                                          or signed_in.session.upstream in client.allowed_upstreams)
    return await flow.start(svc, sign_in, signed_in=signed_in if accepted else None)


# What a legacy app's user handler is asked with: the old gateway gave every app the whole profile.
LEGACY_SCOPES = ["openid", "profile", "email", "org", "groups"]


async def finish_legacy(svc: Services, pending: PendingSignIn, signed_in: SignedIn) -> flow.Ending:
    """The person is signed in: once the sign-in has ended, ``?token=`` or a PHP session for the app."""
    client = await find_client(svc.db, pending.client_id)
    if client is None:
        raise PageError(_("Unknown application"), _("This application has been removed or disabled."))

    async def hand_back():
        sso, profile, app_user = signed_in.session, signed_in.account.profile, signed_in.app_user or {}
        if client.mode == "query_token":
            return await hand_back_token(svc, client, sso, profile, app_user, pending.request)
        return await hand_back_php_session(svc, client, sso, profile, app_user, pending.request)

    return flow.Ending(answer_after=hand_back, application=(client, LEGACY_SCOPES))


def signing_key(svc: Services, client: Client) -> str:
    if client.legacy_use_global_key:
        if not svc.settings.legacy.global_key:
            raise PageError(_("The application could not sign you in"),
                            _("op-proxy is not configured for this application. Contact the administrator."), 500)
        return svc.settings.legacy.global_key
    return decrypt(svc.keyring.data_key(), client.legacy_key)


async def hand_back_token(svc, client, sso, profile: dict, app_user: dict, sign_in: LegacyRequest):
    """``redirect_uri?token=``: a bearer token in a URL, so it is short-lived, for one audience,
    never leaked by Referer, and audited every time (UPSTREAMS.md item 8)."""
    data = {**normalized_user(profile, sso.sub), **app_user}
    token, jti = query_token.mint(key=signing_key(svc, client), issuer=svc.settings.issuer,
                                  client_id=client.client_id, data=data, lifetime=client.legacy_token_lifetime)
    await audit.record(svc.db, "legacy_token_issued", client_id=client.client_id, sub=sso.sub,
                       upstream=sso.upstream, ip=client_ip(), jti=jti)
    response = redirect(url_with(sign_in.redirect_uri, token=token, state=sign_in.state), 303)
    response.headers.update({**NO_STORE, "Referrer-Policy": "no-referrer"})
    return response


async def hand_back_php_session(svc, client, sso, profile: dict, app_user: dict, sign_in: LegacyRequest):
    settings = client.php_session
    user, role = await find_or_create_user(svc.db, sso.sub, profile, client.client_id)
    session_id = new_session_id()
    try:
        await PhpSessionStore(settings).write(session_id, {
            "user_is_logged_in": True, "user_info": {**user_info(user, role), **app_user}})
    except store_errors() as exc:  # the save path, its group or the Redis server, as the administrator set them
        where = settings.get("save_path") if settings.get("save_handler", "files") == "files" else "Redis"
        logger.error("php_session of %s: cannot write a session in %s: %s", client.client_id, where,
                     getattr(exc, "strerror", None) or type(exc).__name__)
        raise PageError(_("The application could not sign you in"),
                        _("op-proxy is not configured for this application. Contact the administrator."),
                        500, detail="php_session_unwritable") from None
    await audit.record(svc.db, "legacy_session_created", client_id=client.client_id, sub=sso.sub,
                       upstream=sso.upstream, ip=client_ip(), role=role)
    response = redirect(sign_in.redirect_uri, 303)
    response.headers.update(NO_STORE)
    response.set_cookie(settings.get("cookie_name", "PHPSESSID"), session_id, path=settings.get("cookie_path", "/"),
                        domain=settings.get("cookie_domain") or None, httponly=settings.get("cookie_httponly", True),
                        secure=settings.get("cookie_secure", svc.settings.server.secure_cookies),
                        samesite=settings.get("cookie_samesite", "Lax"))
    return response


@blueprint.route("/public/logout.php", methods=["GET", "POST"])
@blueprint.route("/sso-authen/public/logout.php", methods=["GET", "POST"])
async def logout():
    """Ends op-proxy's session and every legacy PHP session of this browser, then back to a
    registered post-logout URI only: the named client's (RP-Initiated Logout 1.0 §3), or, when the
    old app names none, one some legacy app registered. A request that names neither (a link on
    any other site) is confirmed by the person first, as at ``/logout``."""
    svc = services()
    args = (await request.form if request.method == "POST" else request.args).to_dict()
    async with svc.db.session() as session:
        legacy = list((await session.scalars(select(Client).where(Client.mode.in_(LEGACY_MODES)))).all())
    named = next((c for c in legacy if c.enabled and c.client_id == args.get("client_id")), None)
    return_to = args.get("post_logout_redirect_uri")
    requester = named
    if return_to is not None:
        candidates = [named] if args.get("client_id") else [c for c in legacy if c.enabled]
        owners = [c for c in candidates if c is not None and return_to in c.post_logout_redirect_uris]
        if not owners:
            raise PageError(_("Invalid return address"),
                            _("The application asked to return you to an address it has not registered."))
        requester = owners[0] if len(owners) == 1 else named

    sso = await current_session(svc.db)
    php_sessions = php_sessions_of_this_browser(legacy)
    csrf = legacy_logout_csrf_token(php_sessions)
    asked_by_a_known_app = named is not None or return_to is not None
    confirmed = request.method == "POST" and constant_time_equals(args.get("csrf", ""), csrf)
    if (sso is not None or php_sessions) and not (asked_by_a_known_app or confirmed):
        return await render_page("logout_confirm.html", client=None, action=request.path, csrf=csrf, fields={
            k: v for k, v in args.items() if k in ("client_id", "post_logout_redirect_uri", "ui_locales")})

    if sso is not None:
        await end_session(svc.db, sso)
        await audit.record(svc.db, "sign_out", client_id=requester.client_id if requester else None, sub=sso.sub,
                           upstream=sso.upstream, ip=client_ip())
    response = redirect(return_to, 303) if return_to else await render_page("logged_out.html", client=requester)
    response.headers.update(NO_STORE)
    response.delete_cookie(SESSION_COOKIE, path="/")
    await end_php_sessions(php_sessions, response)
    return response


def php_sessions_of_this_browser(clients: list[Client]) -> list[tuple[Client, str]]:
    """(php_session client, the session id this browser holds for it): every app's, since the
    person signs out of them all, whichever app (if any) sent them."""
    found = []
    for client in clients:
        if client.mode == "php_session" and client.php_session:
            session_id = request.cookies.get(client.php_session.get("cookie_name", "PHPSESSID"))
            if session_id:
                found.append((client, session_id))
    return found


def legacy_logout_csrf_token(php_sessions: list[tuple[Client, str]]) -> str:
    """Known only to this browser: it is made of the cookies that sign it in."""
    held = [request.cookies.get(SESSION_COOKIE, "")] + sorted({session_id for _client, session_id in php_sessions})
    return token_digest("legacy-logout:" + "|".join(held))


async def end_php_sessions(php_sessions: list[tuple[Client, str]], response) -> None:
    ended, forgotten = set(), set()
    for client, session_id in php_sessions:
        settings = client.php_session
        store = (settings.get("save_handler", "files"), settings.get("save_path"), session_id)
        if store not in ended:
            ended.add(store)
            try:
                await PhpSessionStore(settings).destroy(session_id)
            except store_errors() as exc:  # the others still end; this one expires with its lifetime
                logger.warning("php_session of %s: could not end a session: %s", client.client_id,
                               type(exc).__name__)
        cookie = (settings.get("cookie_name", "PHPSESSID"), settings.get("cookie_path", "/"),
                  settings.get("cookie_domain") or None)
        if cookie not in forgotten:
            forgotten.add(cookie)
            response.delete_cookie(cookie[0], path=cookie[1], domain=cookie[2])
