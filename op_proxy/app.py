"""The Quart application: blueprints, start-up, security headers and error pages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from quart import Quart, redirect, request

from op_proxy import branding, i18n, logs, web
from op_proxy.clients.registry import seal_plaintext_api_secrets, sync_config_clients
from op_proxy.config import Settings
from op_proxy.http_connection import use_body_first_connections
from op_proxy.services import Services
from op_proxy.storage.housekeeping import purge_periodically
from op_proxy.web import LANGUAGE_COOKIE, render_page, set_cookie

log = logging.getLogger("op_proxy")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # No inline script anywhere. form-action is set per page, because browsers check the redirect that
    # answers a form too: the password and consent forms may lead to op-proxy and the application
    # (web.forms_lead_only_to), the admin panel's to itself; a sign-out confirmation is left open (its
    # answer may be the upstream's own sign-out, then the application).
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


class IssuerBoundQuart(Quart):
    """A Quart application whose URLs (slash redirects, ``url_for(_external=True)``) are built from
    the issuer, never from the Host header a client chose: ``Host: evil.example`` must not turn
    ``/admin`` into a redirect to ``http://evil.example/admin/`` (nor poison a cache with one).
    Requests are still matched whatever their Host, so processes behind a proxy that passes its own
    upstream address (nginx's default ``Host: $proxy_host``) keep working."""

    issuer: str = ""

    async def preprocess_request(self, request_context=None):
        # The matched route's template, for /metrics (logs.EveryRequest counts the request).
        if (frame := logs.current_frame()) is not None and request.url_rule is not None:
            frame.route = request.url_rule.rule
        return await super().preprocess_request(request_context)

    def create_url_adapter(self, request):
        if request is None or not self.issuer:
            return super().create_url_adapter(request)
        issuer = urlsplit(self.issuer)
        return self.url_map.bind(issuer.netloc, script_name=issuer.path or "/", url_scheme=issuer.scheme,
                                 default_method=request.method, path_info=request.path,
                                 query_args=request.query_string.decode("latin-1"))


def create_app(settings: Settings) -> Quart:
    import admin
    from admin import auth as admin_auth
    from admin import upstreams as admin_upstreams
    from op_proxy import operations
    from op_proxy.legacy import routes as legacy
    from op_proxy.provider import (
        api,
        authorize,
        discovery,
        finish,
        introspection,
        logout,
        responses,
        token,
        userinfo,
    )
    from op_proxy.signin import callbacks, flow, pages
    from op_proxy.signin.pending import AdminSignIn, AdminTestSignIn, LegacyRequest, OidcRequest

    app = IssuerBoundQuart(__name__)
    app.issuer = settings.issuer
    use_body_first_connections(app)
    # [errors] The language of every page, negotiated once per request, and the one family of errors
    # (op_proxy/errors.py) answered as a redirect, JSON or a page: web.py and provider/responses.py.
    web.negotiate_locale_per_request(app)
    responses.register_error_handlers(app)
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    app.extensions["op_proxy"] = svc = Services.build(settings)
    # One sign-in flow, and where each kind of sign-in goes back to once the person has signed in.
    svc.front_doors = flow.front_doors({
        OidcRequest: finish.finish_oidc,  # a code (or an error) for the application
        LegacyRequest: legacy.finish_legacy,  # ?token= or the PHP session
        AdminSignIn: admin_auth.finish_admin_sign_in,  # into the admin panel
        AdminTestSignIn: admin_upstreams.finish_admin_test,  # an administrator's test of an upstream
    })
    for module in (discovery, authorize, finish, token, userinfo, introspection, logout, pages, legacy, operations):
        app.register_blueprint(module.blueprint)
    callbacks.register(app, svc.connectors)
    admin.register(app)
    branding.register(app, settings.branding, svc.db)
    background: list[asyncio.Task] = []

    @app.before_serving
    async def start():
        await svc.db.upgrade()
        await sync_config_clients(svc.db, settings.clients, svc.keyring.data_key())
        if sealed := await seal_plaintext_api_secrets(svc.db, svc.keyring.data_key()):
            log.info("sealed %d user handler API secrets stored in plaintext before migration 0009", sealed)
        key = svc.keyring.ensure_signing_key()
        log.info("op-proxy serving issuer=%s signing_key=%s config=%s", settings.issuer, key.kid, settings.source)
        if settings.storage.purge_interval:
            background.append(asyncio.create_task(purge_periodically(svc.db, settings), name="purge"))

    @app.after_serving
    async def stop():
        for task in background:
            task.cancel()  # a purge cut short rolls its batch back; the next start goes on
            with contextlib.suppress(asyncio.CancelledError):
                await task
        background.clear()
        await svc.db.close()
        await svc.http.aclose()

    every_response = dict(SECURITY_HEADERS)
    if settings.issuer.startswith("https://"):
        # Browsers that once reached op-proxy over https never try plain http again (RFC 6797).
        every_response["Strict-Transport-Security"] = "max-age=31536000"
    # In front of Quart: the request id, security headers and metrics of every request, then the
    # public documents answered from their prepared bytes, and the endpoints applications call.
    api_lane = api.ApiEndpoints(app, svc, [token.ENDPOINT, userinfo.ENDPOINT, introspection.INTROSPECTION,
                                           introspection.REVOCATION])
    app.asgi_app = logs.EveryRequest(discovery.PublicDocuments(api_lane, svc), every_response,
                                     operations.observe_request)

    @app.after_request
    async def remember_language(response):
        if b"lang=" in request.query_string:
            chosen = request.args.get("lang")
            if chosen in i18n.SUPPORTED_LOCALES:
                set_cookie(response, LANGUAGE_COOKIE, chosen, max_age=365 * 86400)
        return response

    @app.route("/favicon.ico")
    async def favicon():
        # Browsers ask for it on pages without <link rel="icon"> (JSON endpoints, for one).
        return redirect("/static/favicon.svg", 301)

    @app.route("/")
    async def home():
        return await render_page("home.html", issuer=settings.issuer)

    render_pages_without_a_thread(app)
    return app


def render_pages_without_a_thread(app: Quart) -> None:
    """Flask's ``Scaffold`` gives every blueprint Flask's own template context processor, which is
    synchronous: Quart ran it in a thread for every page a blueprint's view rendered (a fifth of a
    sign-in's CPU went to those thread hops), and under Quart it adds nothing (no Flask context is
    ever pushed; Quart's own asynchronous one, the application's, gives templates ``g``, ``request``
    and ``session``). Called once every blueprint is registered."""
    from flask.templating import _default_template_ctx_processor as flasks_own

    for processors in app.template_context_processors.values():
        processors[:] = [processor for processor in processors if processor is not flasks_own]
