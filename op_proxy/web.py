"""Small helpers shared by the endpoints: client IP, cookies, rendering pages in the right language."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from quart import make_response, render_template, request

from op_proxy import i18n
from op_proxy.services import services

LANGUAGE_COOKIE = "op_lang"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def client_ip() -> str | None:
    if services().settings.server.trust_forwarded_headers:
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote_addr


def use_locale(ui_locales: str | None = None) -> str:
    chosen = request.args.get("lang") or request.cookies.get(LANGUAGE_COOKIE)
    locale = i18n.negotiate_locale(ui_locales=ui_locales, chosen=chosen,
                                   accept_language=request.accept_languages,
                                   default=services().settings.server.default_locale)
    i18n.set_locale(locale)
    return locale


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
