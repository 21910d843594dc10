"""The panel's front page and its menu."""

from __future__ import annotations

from quart import jsonify, make_response, request
from sqlalchemy import func, select

from admin import dashboard
from admin.auth import COOKIE, admin_page
from op_proxy.app import SECURITY_HEADERS
from op_proxy.i18n import N_, current_locale
from op_proxy.i18n import gettext as _
from op_proxy.security import token_digest
from op_proxy.services import services
from op_proxy.storage.models import Client
from op_proxy.web import NO_STORE, render_page

MENU = (
    ("/admin/", N_("Dashboard")),
    ("/admin/clients", N_("Applications")),
    ("/admin/audit", N_("Audit log")),
    ("/admin/upstreams", N_("Identity providers")),
    ("/admin/keys", N_("Signing keys")),
    ("/admin/users", N_("Users and roles")),
)


def attach(bp) -> None:
    @bp.app_template_global()
    def admin_menu():
        return [(path, _(label)) for path, label in MENU]

    @bp.route("/")
    @admin_page()
    async def home():
        svc = services()
        async with svc.db.session() as session:
            clients = await session.scalar(select(func.count()).select_from(Client))
        figures = await dashboard.figures(svc, locale=current_locale())
        response = await render_page("admin/home.html", figures=figures, client_count=clients,
                                     upstream_count=len(svc.connectors))
        # The page's script listens to /admin/dashboard/events: allow connections back to us (only here).
        response.headers["Content-Security-Policy"] = SECURITY_HEADERS["Content-Security-Policy"] + \
            "; connect-src 'self'"
        return response

    @bp.route("/dashboard.json")
    @admin_page()
    async def dashboard_json():
        return jsonify(await dashboard.figures(services(), locale=current_locale())), 200, NO_STORE

    @bp.route("/dashboard/events")
    @admin_page()
    async def dashboard_events():
        body = dashboard.event_stream(services(), token_digest(request.cookies.get(COOKIE, "")),
                                      locale=current_locale())
        response = await make_response(body, 200, {**NO_STORE, "Content-Type": "text/event-stream; charset=utf-8",
                                                   "X-Accel-Buffering": "no"})
        response.timeout = None  # open for as long as the page is
        return response
