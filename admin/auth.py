"""Admins: argon2 passwords, lockout after repeated failures, server-side sessions with a CSRF token,
and two roles — ``admin`` (writes) and ``viewer`` (reads)."""

from __future__ import annotations

import functools
import time

from quart import g, redirect, request
from sqlalchemy import delete, select, update

from op_proxy import audit
from op_proxy.i18n import gettext as _
from op_proxy.security import constant_time_equals, hash_secret, random_token, token_digest, verify_secret
from op_proxy.services import services
from op_proxy.signin import flow
from op_proxy.signin.sessions import account_by_sub
from op_proxy.storage.models import Admin, AdminSession
from op_proxy.web import client_ip, render_page, set_cookie, use_locale

COOKIE = "op_admin"
LOGIN_CSRF_COOKIE = "op_admin_login"
SESSION_LIFETIME = 8 * 3600
MAX_FAILED_ATTEMPTS = 5
LOCKOUT_SECONDS = 15 * 60
ROLES = ("admin", "viewer")


async def create_admin(db, username: str, password: str, role: str = "admin") -> Admin:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    admin = Admin(username=username, password_hash=hash_secret(password), role=role, failed_attempts=0,
                  created_at=int(time.time()))
    async with db.transaction() as session:
        if await session.scalar(select(Admin).where(Admin.username == username)):
            raise ValueError(f"admin {username} already exists")
        session.add(admin)
    return admin


def cookie_options(svc, **extra) -> dict:
    return {"path": "/admin", "httponly": True, "samesite": "Strict", "secure": svc.settings.server.secure_cookies,
            **extra}


async def current_admin():
    """The signed-in admin and their session, or (None, None)."""
    svc = services()
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None, None
    async with svc.db.session() as session:
        row = await session.get(AdminSession, token_digest(cookie))
        admin = await session.get(Admin, row.admin_id) if row and row.expires_at > time.time() else None
    return (admin, row) if admin else (None, None)


def csrf_ok(expected: str, form) -> bool:
    sent = form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    return bool(expected) and constant_time_equals(sent, expected)


def admin_page(role: str = "viewer"):
    """Every admin route: signed in, the right role for writes, and a CSRF token on every POST."""
    def decorate(view):
        @functools.wraps(view)
        async def wrapper(*args, **kwargs):
            use_locale()
            admin, admin_session = await current_admin()
            if admin is None:
                return redirect("/admin/login", 303)
            g.admin, g.csrf_token = admin, admin_session.csrf_token
            if request.method not in ("GET", "HEAD"):
                if not csrf_ok(admin_session.csrf_token, await request.form):
                    return await render_page("admin/error.html", 400, title=_("Request refused"),
                                             message=_("The form had expired or did not come from this panel. "
                                                       "Reload the page and try again."))
                if admin.role != "admin":
                    return await render_page("admin/error.html", 403, title=_("Not allowed"),
                                             message=_("Your role (viewer) can look but not change anything."))
            return await view(*args, **kwargs)
        return wrapper
    return decorate


async def record_admin_action(action: str, **detail) -> None:
    await audit.record(services().db, "admin_action", ip=client_ip(), admin=g.admin.username, action=action,
                       **detail)


async def start_admin_session(svc, admin: Admin, response):
    cookie = random_token(32)
    async with svc.db.transaction() as session:
        session.add(AdminSession(cookie_digest=token_digest(cookie), admin_id=admin.id, csrf_token=random_token(24),
                                 created_at=int(time.time()), expires_at=int(time.time()) + SESSION_LIFETIME))
    response.set_cookie(COOKIE, cookie, max_age=SESSION_LIFETIME, **cookie_options(svc))
    return response


def sso_role(svc, groups) -> str | None:
    groups = set(groups or [])
    if groups & set(svc.settings.admin.sso_admin_groups):
        return "admin"
    if groups & set(svc.settings.admin.sso_viewer_groups):
        return "viewer"
    return None


@flow.front_door("admin")
async def finish_admin_sign_in(svc, pending, login_id: str, sso):
    """Signed in through op-proxy itself: an admin (or viewer) if a configured group says so."""
    if not await flow.mark_finished(svc, login_id):
        return redirect("/admin/", 303)
    account = await account_by_sub(svc.db, sso.sub)
    role = sso_role(svc, account.profile.get("groups"))
    name = account.profile.get("username") or account.profile.get("email") or sso.sub
    if role is None:
        await audit.record(svc.db, "admin_sign_in", outcome="failure", sub=sso.sub, upstream=sso.upstream,
                           ip=client_ip(), admin=name, reason="not_in_admin_group")
        return await render_page("admin/error.html", 403, title=_("Not allowed"),
                                 message=_("You signed in, but you are not in a group allowed to run op-proxy."))
    username = f"{sso.upstream}:{name}"
    async with svc.db.transaction() as session:
        admin = await session.scalar(select(Admin).where(Admin.username == username))
        if admin is None:
            # No password: this admin can only come in through op-proxy's own sign-in.
            admin = Admin(username=username, password_hash="!sso", role=role, failed_attempts=0,
                          created_at=int(time.time()))
            session.add(admin)
        admin.role, admin.last_sign_in_at = role, int(time.time())
    await audit.record(svc.db, "admin_sign_in", sub=sso.sub, upstream=sso.upstream, ip=client_ip(), admin=username,
                       via="sso")
    return await start_admin_session(svc, admin, redirect("/admin/", 303))


def attach(bp) -> None:
    @bp.route("/login/sso")
    async def login_through_op_proxy():
        svc = services()
        browser, new_browser = flow.browser_id()
        login_id = await flow.begin(svc, front="admin", client_id="(admin panel)", browser=browser,
                                    params={"ui_locales": request.args.get("lang")})
        response = redirect(f"/login/{login_id}", 303)
        if new_browser:
            set_cookie(response, flow.BROWSER_COOKIE, browser)
        return response

    @bp.route("/login", methods=["GET", "POST"])
    async def login():
        svc = services()
        use_locale()
        login_token = request.cookies.get(LOGIN_CSRF_COOKIE) or random_token(24)
        if request.method == "GET":
            response = await render_page("admin/login.html", csrf_token=login_token, error=None,
                                         sso=bool(svc.settings.admin.sso_admin_groups
                                                  or svc.settings.admin.sso_viewer_groups))
            response.set_cookie(LOGIN_CSRF_COOKIE, login_token, **cookie_options(svc))
            return response
        form = await request.form
        if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form):
            return await render_page("admin/login.html", 400, csrf_token=login_token, sso=False,
                                     error=_("The form had expired. Try again."))
        error = await check_password(svc, form.get("username", ""), form.get("password", ""))
        if error:
            return await render_page("admin/login.html", 401, csrf_token=login_token, error=error, sso=False)
        async with svc.db.session() as session:
            admin = await session.scalar(select(Admin).where(Admin.username == form["username"]))
        return await start_admin_session(svc, admin, redirect("/admin/", 303))

    @bp.route("/logout", methods=["POST"])
    @admin_page()
    async def logout():
        svc = services()
        async with svc.db.transaction() as session:
            await session.execute(delete(AdminSession).where(
                AdminSession.cookie_digest == token_digest(request.cookies.get(COOKIE, ""))))
        response = redirect("/admin/login", 303)
        response.delete_cookie(COOKIE, path="/admin")
        return response


async def check_password(svc, username: str, password: str) -> str | None:
    """None when the password is right; otherwise the message to show. Locks after repeated failures."""
    now = int(time.time())
    async with svc.db.session() as session:
        admin = await session.scalar(select(Admin).where(Admin.username == username))
    if admin is not None and admin.locked_until and admin.locked_until > now:
        await audit.record(svc.db, "admin_sign_in", outcome="failure", ip=client_ip(), admin=username,
                           reason="locked")
        return _("Too many failed attempts: this account is locked for %(minutes)d minutes.",
                 minutes=max(1, (admin.locked_until - now + 59) // 60))
    valid = await verify_secret(admin.password_hash if admin else None, password)
    if admin is None or not valid:
        if admin is not None:
            failures = admin.failed_attempts + 1
            async with svc.db.transaction() as session:
                await session.execute(update(Admin).where(Admin.id == admin.id).values(
                    failed_attempts=failures,
                    locked_until=now + LOCKOUT_SECONDS if failures >= MAX_FAILED_ATTEMPTS else admin.locked_until))
        await audit.record(svc.db, "admin_sign_in", outcome="failure", ip=client_ip(), admin=username,
                           reason="wrong_password")
        return _("Wrong username or password. Try again.")
    async with svc.db.transaction() as session:
        await session.execute(update(Admin).where(Admin.id == admin.id).values(
            failed_attempts=0, locked_until=None, last_sign_in_at=now))
    await audit.record(svc.db, "admin_sign_in", ip=client_ip(), admin=username)
    return None
