"""Small helpers shared by the endpoints: client IP, cookies, rendering pages in the right language."""

from __future__ import annotations

from ipaddress import ip_address
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quart import make_response, render_template, request

from op_proxy import i18n
from op_proxy.services import services

LANGUAGE_COOKIE = "op_lang"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def client_ip() -> str | None:
    """Who sent this request (``client_address``)."""
    return client_address(services().settings.server.trusted_proxies, request.remote_addr,
                          request.headers.getlist("X-Forwarded-For"))


def client_address(trusted, peer: str | None, forwarded_for: list[str]) -> str | None:
    """The socket ``peer``, unless that is one of ``[server] trusted_proxies``; then X-Forwarded-For
    is read from the right, skipping trusted proxies, and the first address not among them is the
    client (the left part of the header is whatever the client chose to send). Nothing else of a
    forwarded request is believed: every URL op-proxy builds comes from the issuer, so
    X-Forwarded-Proto and X-Forwarded-Host are never read."""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if _address(hop) is None:
            break  # a proxy of ours would not have written this: keep the last address we could trust
        peer = hop
        if not _is_trusted(hop, trusted):
            break
    return peer


def _address(text: str | None):
    try:
        return ip_address(text.removeprefix("[").removesuffix("]")) if text else None
    except ValueError:
        return None


def _is_trusted(text: str | None, trusted) -> bool:
    address = _address(text)
    if address is None:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


# ui_locales is a parameter of these requests only (OIDC Core §3.1.2.1, RP-Initiated Logout 1.0 §2),
# sent in the query or, for a POST, the form.
ENDPOINTS_TAKING_UI_LOCALES = {"authorize.authorize", "logout.logout", "legacy.logout"}


def negotiate_locale_per_request(app) -> None:
    """Every request speaks the person's language before any view, hook or error handler runs."""

    @app.before_request
    async def negotiate_locale():
        if request.endpoint in ENDPOINTS_TAKING_UI_LOCALES:
            source = await request.form if request.method == "POST" else request.args
            use_locale(source.get("ui_locales"))
        else:
            # Negotiated when first needed (a page, an error description): a token, userinfo or
            # introspection call that succeeds never needs it.
            this_request, default = request._get_current_object(), services().settings.server.default_locale
            i18n.negotiate_when_needed(lambda: negotiated_locale(this_request, None, default))


def use_locale(ui_locales: str | None = None) -> str:
    """The language of this request; called again only where a stored request's ``ui_locales`` is
    known (a pending sign-in)."""
    locale = negotiated_locale(request, ui_locales, services().settings.server.default_locale)
    i18n.set_locale(locale)
    return locale


def negotiated_locale(this_request, ui_locales: str | None, default: str) -> str:
    chosen = this_request.args.get("lang") or this_request.cookies.get(LANGUAGE_COOKIE)
    return i18n.negotiate_locale(ui_locales=ui_locales, chosen=chosen,
                                 accept_language=this_request.accept_languages, default=default)


def url_with(url: str, **params) -> str:
    """``url`` with ``params`` added to its query (keeping what the query already had)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in query if k not in params]
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def render_page(template: str, status: int = 200, *, here: str | None = None, **context):
    """``here``: where the language links lead, when this address must not be requested again (a
    callback carrying an upstream's code and state)."""
    locale = i18n.current_locale()
    here = here or (request.full_path if request.query_string else request.path)
    switches = [(code, i18n.language_name(code), url_with(here, lang=code))
                for code in i18n.SUPPORTED_LOCALES if code != locale]
    body = await render_template(template, locale=locale, other_locales=switches, **context)
    return await make_response(body, status, {**NO_STORE, "Content-Type": "text/html; charset=utf-8"})


def set_cookie(response, name: str, value: str, *, max_age: int | None = None, path: str = "/") -> None:
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Lax",
                        secure=services().settings.server.secure_cookies)


def forms_lead_only_to(response, answered_at: str | None):
    """CSP ``form-action`` for a sign-in page: its form posts to op-proxy, whose answer is a redirect
    within op-proxy or to ``answered_at`` (the application); browsers check that redirect too. A form
    an injected tag planted cannot send the person's password anywhere else."""
    from op_proxy.app import SECURITY_HEADERS
    from op_proxy.provider.responses import origin

    targets = "'self'" + (f" {origin(answered_at)}" if answered_at else "")
    policy = response.headers.get("Content-Security-Policy", SECURITY_HEADERS["Content-Security-Policy"])
    if "form-action" not in policy:
        response.headers["Content-Security-Policy"] = f"{policy}; form-action {targets}"
    return response
