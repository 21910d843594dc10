"""Authorization responses to the client: ``query`` (302) or ``form_post`` (an auto-submitting page),
always with ``iss`` (RFC 9207) and the client's ``state``."""

from __future__ import annotations

from urllib.parse import urlsplit

from quart import redirect

from op_proxy.errors import RedirectableError
from op_proxy.web import NO_STORE, render_page, url_with


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


async def error_to_client(svc, redirect_uri: str, response_mode: str, state: str | None,
                          error: RedirectableError):
    return await to_client(svc, redirect_uri, response_mode, {
        "error": error.error, "error_description": error.description or None, "state": state,
    })
