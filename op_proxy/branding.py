"""The organisation's face on every page a person sees: its name, logo, colour and support contact
(``[branding]``), the way back to the application, and the reference a person quotes to the help desk.

Pages allow styles and images only from op-proxy itself (``style-src 'self'; img-src 'self'``), so
the colour is served as a small stylesheet and the logo from a route of ours: no CDN, nothing inline.
"""

from __future__ import annotations

import mimetypes
import sys
from pathlib import Path
from urllib.parse import urlsplit

from quart import Quart, Response, request, send_file

from op_proxy import i18n
from op_proxy.config import BrandingSettings
from op_proxy.errors import DATABASE_UNAVAILABLE
from op_proxy.logs import current_request_id
from op_proxy.storage.models import Client, PendingLogin

LOGO_TYPES = {".svg", ".png", ".jpg", ".jpeg", ".webp"}
LOGO_PATH = "/branding/logo"
STYLESHEET_PATH = "/branding.css"


def relative_luminance(color: str) -> float:
    """WCAG 2.x relative luminance of ``#rrggbb``."""
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_with_white(color: str) -> float:
    """WCAG 2.x contrast ratio of white text on ``color`` (AA asks 4.5:1 for body text)."""
    return 1.05 / (relative_luminance(color) + 0.05)


class Brand:
    """What the templates read as ``brand``."""

    def __init__(self, settings: BrandingSettings):
        self.settings = settings
        logo = settings.logo
        self.logo_url = (LOGO_PATH if logo and "://" not in logo else logo) or None
        self.support_email, self.support_phone = settings.support_email, settings.support_phone
        self.support_url = settings.support_url

    def name(self, locale: str) -> str:
        names = {"th": self.settings.name_th, "en": self.settings.name_en}
        return names.get(locale) or self.settings.name_en or self.settings.name_th

    @property
    def has_support(self) -> bool:
        return bool(self.support_email or self.support_phone or self.support_url)


def application_home(client: Client | None) -> str | None:
    """Where a person goes back to the application: the origin of a redirect URI it registered (an
    address the application chose, never one a request carried); None for apps without a web origin."""
    if client is None or not client.enabled:
        return None
    for uri in client.redirect_uris or ():
        parts = urlsplit(uri)
        if parts.scheme in ("https", "http") and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}/"
    return None


async def requesting_application(db) -> Client | None:
    """The application this request comes from, when the request says so: the pending sign-in of
    ``/login/<login_id>/...`` or a ``client_id`` in the query."""
    from op_proxy.security import token_digest

    login_id = (request.view_args or {}).get("login_id")
    client_id = request.args.get("client_id")
    async with db.session() as session:
        if login_id and not client_id:
            pending = await session.get(PendingLogin, token_digest(login_id))
            client_id = pending.client_id if pending is not None else None
        return await session.get(Client, client_id) if client_id else None


def register(app: Quart, settings: BrandingSettings, db) -> None:
    brand = Brand(settings)
    stylesheet = f":root {{ --accent: {settings.primary_color}; }}\n"

    @app.context_processor
    async def branding():
        async def way_back(client: Client | None = None) -> dict | None:
            """Name and address of the application to go back to, if one is known (error pages)."""
            if client is None and isinstance(sys.exception(), DATABASE_UNAVAILABLE):
                return None  # the page says the database is down: asking it again would only wait longer
            try:
                client = client or await requesting_application(db)
            except Exception:  # the database is down: the page still shows, without the link
                return None
            home = application_home(client)
            return {"name": client.name, "url": home} if home else None

        return {"brand": brand, "brand_name": brand.name(i18n.current_locale()),
                "request_id": current_request_id(), "way_back": way_back}

    @app.route(STYLESHEET_PATH)
    async def branding_stylesheet():
        return Response(stylesheet, content_type="text/css; charset=utf-8",
                        headers={"Cache-Control": "public, max-age=3600"})

    if settings.logo and "://" not in settings.logo:
        logo = Path(settings.logo)

        @app.route(LOGO_PATH)
        async def branding_logo():
            kind = mimetypes.guess_type(logo.name)[0] or "application/octet-stream"
            response = await send_file(logo, mimetype=kind)
            response.headers["Cache-Control"] = "public, max-age=3600"
            return response
