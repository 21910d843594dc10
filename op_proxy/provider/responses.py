"""Responses to the client: authorization responses, ``query`` (302) or ``form_post`` (an
auto-submitting page), always with ``iss`` (RFC 9207) and the client's ``state``; every error of the
family in ``op_proxy.errors``, answered in one place (``register_error_handlers``); and CORS for the
endpoints a browser application calls itself (token, userinfo, revocation)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import orjson
from quart import Response, redirect, request

from op_proxy import i18n
from op_proxy.clients.registry import list_clients
from op_proxy.errors import DATABASE_UNAVAILABLE, InvalidRequest, PageError, Refusal
from op_proxy.masking import loggable
from op_proxy.services import services
from op_proxy.web import NO_STORE, render_page, url_with

log = logging.getLogger("op_proxy")

JSON_NO_STORE = {"Content-Type": "application/json", **NO_STORE}
# Endpoints applications call: their errors are JSON (RFC 6749 §5.2), never a page.
API_PATHS = ("/token", "/userinfo", "/introspect", "/revoke", "/jwks", "/.well-known/")


def oauth_json(body: dict, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, {**JSON_NO_STORE, **headers} if headers else JSON_NO_STORE)


async def to_client(svc, redirect_uri: str, response_mode: str, params: dict):
    params = {**params, "iss": svc.settings.issuer}
    params = {k: v for k, v in params.items() if v is not None}
    if response_mode == "form_post":
        response = await render_page("form_post.html", redirect_uri=redirect_uri, params=params)
        # The page's only job is to post to the client: allow exactly that origin as a form target.
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'self'; style-src 'self'; form-action {origin(redirect_uri)}; "
            "frame-ancestors 'none'; base-uri 'none'")
        return response
    response = redirect(url_with(redirect_uri, **params), 303)
    response.headers.update(NO_STORE)
    return response


def origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else f"{parts.scheme}:"


# -- Errors: one family, three ways of answering -----------------------------------------------------

async def answer(error: Refusal):
    """A redirect to the client when the error carries its verified redirect URI; a page for people,
    always for a ``PageError``; JSON to applications (RFC 6749 §5.2), with the error's headers."""
    if error.redirect is not None:
        target = error.redirect
        return await to_client(services(), target.redirect_uri, target.response_mode, {
            "error": error.error, "error_description": error.description or None, "state": target.state,
        })
    if isinstance(error, PageError):
        log.info("page error status=%s detail=%s path=%s", error.status, loggable(error.detail),
                 loggable(request.path))
        return await render_page("error.html", error.status, title=error.title, message=error.message)
    if request.path.startswith(API_PATHS):
        return oauth_json(error.body(), error.status, error.headers)
    response = await render_page("error.html", error.status, title=i18n.gettext(error.page_title),
                                 message=i18n.gettext(error.page_message, error=error.error))
    response.headers.update(error.headers)
    return response


async def answer_database_outage(failure: Exception):
    from op_proxy.provider.api import database_outage

    return await answer(database_outage(failure, request.path))


async def answer_not_found(_error):
    return await render_page("error.html", 404, title=i18n.gettext("Page not found"),
                             message=i18n.gettext("There is nothing at this address."))


async def answer_method_not_allowed(_error):
    return oauth_json(InvalidRequest("method not allowed").body(), 405)


async def answer_server_error(error):
    """A view that failed (Quart has logged it): JSON to applications, as the API lane answers it;
    werkzeug's page to people, as before."""
    from op_proxy.provider.api import SERVER_ERROR

    if request.path.startswith(API_PATHS):
        return oauth_json(SERVER_ERROR, 500)
    return error


def register_error_handlers(app) -> None:
    app.register_error_handler(Refusal, answer)
    for failure in DATABASE_UNAVAILABLE:
        app.register_error_handler(failure, answer_database_outage)
    app.register_error_handler(404, answer_not_found)
    app.register_error_handler(405, answer_method_not_allowed)
    app.register_error_handler(500, answer_server_error)


# -- CORS (Fetch standard) for the endpoints a single-page application calls from the browser --------

CORS_MAX_AGE = 600  # a preflight is cached no longer than this after its client is disabled
DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def browser_origin(uri: str) -> str | None:
    """The Origin header a browser sends from a page at ``uri`` (RFC 6454 §6.1), for http(s) only."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None  # native apps' custom schemes: no browser sends such an Origin
    serialized = origin(uri).lower()
    return serialized.removesuffix(DEFAULT_PORTS[scheme])


async def registered_origins(db) -> set[str]:
    """Where the enabled clients' pages live: the origins of their redirect URIs."""
    return {browser_origin(uri) for client in await list_clients(db) if client.enabled
            for uri in client.redirect_uris} - {None}


async def allow_registered_origins(response):
    """An ``after_request`` hook: ``cors_headers`` on a Quart response."""
    # werkzeug's Headers.get and response.vary raise and catch a KeyError for an absent header,
    # which cost more than the rest of this hook on every answer without one: getlist does not.
    vary = ", ".join(response.headers.getlist("Vary")) or None
    preflight = sorted(request.url_rule.methods - {"HEAD", "OPTIONS"}) if request.method == "OPTIONS" else None
    response.headers.update(await cors_headers(services().db, next(iter(request.headers.getlist("Origin")), None),
                                               vary, preflight_methods=preflight))
    return response


async def cors_headers(db, requested_by: str | None, vary: str | None, *,
                       preflight_methods: list[str] | None = None) -> dict[str, str]:
    """Lets a registered application's browser code read this answer (errors included) and answers
    its preflight. Never with credentials: these endpoints take no cookies, and an Origin we do not
    know gets no CORS header at all, so the browser keeps it out. ``vary``: the answer's own Vary."""
    headers = {"Vary": f"{vary}, Origin" if vary else "Origin"}
    if not requested_by:
        return headers
    try:
        known = requested_by.lower() in await registered_origins(db)
    except DATABASE_UNAVAILABLE:
        known = False  # this answer is already the 503 (or will fail anyway): no CORS, no second error
    if not known:
        return headers
    headers["Access-Control-Allow-Origin"] = requested_by
    if preflight_methods is not None:
        headers["Access-Control-Allow-Methods"] = ", ".join(preflight_methods)
        headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE)
    else:
        headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"  # RFC 6750 §3 errors
    return headers
