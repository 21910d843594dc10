"""Admins: argon2 passwords, lockout after repeated failures, server-side sessions with a CSRF token,
and two roles — ``admin`` (writes) and ``viewer`` (reads)."""

from __future__ import annotations

import functools
import re
import time

from quart import g, redirect, request
from sqlalchemy import delete, func, or_, select, update

from op_proxy import audit
from op_proxy.i18n import gettext as _
from op_proxy.security import constant_time_equals, hash_secret, random_token, token_digest, verify_secret
from op_proxy.services import services
from op_proxy.signin import flow
from op_proxy.signin.pending import AdminSignIn
from op_proxy.storage.models import Admin, AdminSession
from op_proxy.web import client_ip, render_page

COOKIE = "op_admin"
LOGIN_CSRF_COOKIE = "op_admin_login"
SESSION_LIFETIME = 8 * 3600
MAX_FAILED_ATTEMPTS = 5
LOCKOUT_SECONDS = 15 * 60
ROLES = ("admin", "viewer")


ADMIN_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")  # no ":": "sso:" names belong to admins who sign in via SSO


def sso_offered(svc) -> bool:
    """Whether the sign-in page offers the organisation account (the SSO groups are configured)."""
    return bool(svc.settings.admin.sso_admin_groups or svc.settings.admin.sso_viewer_groups)


async def create_admin(db, username: str, password: str, role: str = "admin") -> Admin:
    if not ADMIN_NAME.fullmatch(username):
        raise ValueError("the username may hold letters, digits and . _ @ - (64 at most)")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 10:
        raise ValueError("the password must have at least 10 characters")
    admin = Admin(username=username, password_hash=hash_secret(password), role=role, failed_attempts=0,
                  created_at=int(time.time()))
    async with db.transaction() as session:
        # "WATCHER" beside "watcher" would be two accounts people take for one: names differ by more than case.
        taken = await session.scalar(select(Admin.username).where(func.lower(Admin.username) == username.lower()))
        if taken:
            raise ValueError(f"admin {taken} already exists" if taken == username
                             else f"admin {taken} already exists (names differ by more than upper and lower case)")
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


def admin_page(changes_something: bool = True):
    """Every admin route: signed in, and on every POST a CSRF token and, where the POST changes
    something (all but signing out), the admin role."""
    def decorate(view):
        @functools.wraps(view)
        async def wrapper(*args, **kwargs):
            admin, admin_session = await current_admin()
            if admin is None:
                return redirect("/admin/login", 303)
            g.admin, g.csrf_token = admin, admin_session.csrf_token
            if request.method not in ("GET", "HEAD"):
                if not csrf_ok(admin_session.csrf_token, await request.form):
                    return await render_page("admin/error.html", 400, title=_("Request refused"),
                                             message=_("The form had expired or did not come from this panel. "
                                                       "Reload the page and try again."))
                if changes_something and admin.role != "admin":
                    return await render_page("admin/error.html", 403, title=_("Not allowed"),
                                             message=_("Your role (viewer) can look but not change anything."))
            return await view(*args, **kwargs)
        return wrapper
    return decorate


async def record_admin_action(action: str, **detail) -> None:
    sso_sub = g.admin.username.removeprefix(SSO_PREFIX) if g.admin.username.startswith(SSO_PREFIX) else None
    await audit.record(services().db, "admin_action", ip=client_ip(), admin=g.admin.shown_name, sub=sso_sub,
                       action=action,
                       **detail)


async def start_admin_session(svc, admin: Admin, response):
    cookie = random_token(32)
    async with svc.db.transaction() as session:
        session.add(AdminSession(cookie_digest=token_digest(cookie), admin_id=admin.id, csrf_token=random_token(24),
                                 created_at=int(time.time()), expires_at=int(time.time()) + SESSION_LIFETIME))
    response.set_cookie(COOKIE, cookie, max_age=SESSION_LIFETIME, **cookie_options(svc))
    return response


def sso_role(svc, upstream: str, groups) -> str | None:
    """admin or viewer as a configured group says, believed only from the upstreams named in
    ``[admin] sso_upstreams``; None otherwise."""
    if upstream not in svc.settings.admin.sso_upstreams:
        return None
    groups = set(groups or []) if isinstance(groups, list) else set()
    if groups & set(svc.settings.admin.sso_admin_groups):
        return "admin"
    if groups & set(svc.settings.admin.sso_viewer_groups):
        return "viewer"
    return None


SSO_PREFIX = "sso:"


async def finish_admin_sign_in(svc, pending, signed_in) -> flow.Ending:
    """Signed in through op-proxy itself: once the sign-in has ended, into the panel (``enter_the_panel``);
    a sign-in that had ended already (a double submit) goes to the panel's front page."""
    async def enter():
        return await enter_the_panel(svc, signed_in)

    async def to_the_panel():
        return redirect("/admin/", 303)

    return flow.Ending(answer_after=enter, if_ended_before=to_the_panel)


async def enter_the_panel(svc, signed_in):
    """An admin (or viewer) if a configured group says so. The admin row is keyed on the person's account
    (one per upstream and upstream subject), never on a display claim such as a username two people
    could share."""
    sso, account = signed_in.session, signed_in.account
    role = sso_role(svc, sso.upstream, account.profile.get("groups"))
    shown = f"{sso.upstream}:{account.profile.get('username') or account.profile.get('email') or sso.sub}"
    username = SSO_PREFIX + sso.sub
    if role is None:
        await forget_sso_admin(svc, username)  # no longer in the groups: no longer an admin, anywhere
        await audit.record(svc.db, "admin_sign_in", outcome="failure", sub=sso.sub, upstream=sso.upstream,
                           ip=client_ip(), admin=shown,
                           reason="not_in_admin_group" if sso.upstream in svc.settings.admin.sso_upstreams
                           else "upstream_not_trusted_for_admin")
        return await render_page("admin/error.html", 403, title=_("Not allowed"),
                                 message=_("You signed in, but you are not in a group allowed to run op-proxy."))
    async with svc.db.transaction() as session:
        admin = await session.scalar(select(Admin).where(Admin.username == username))
        if admin is None:
            # No password: this admin can only come in through op-proxy's own sign-in.
            admin = Admin(username=username, password_hash="!sso", role=role, failed_attempts=0,
                          created_at=int(time.time()))
            session.add(admin)
        admin.role, admin.display_name, admin.last_sign_in_at = role, shown, int(time.time())
    await audit.record(svc.db, "admin_sign_in", sub=sso.sub, upstream=sso.upstream, ip=client_ip(), admin=shown,
                       via="sso")
    return await start_admin_session(svc, admin, redirect("/admin/", 303))


async def forget_sso_admin(svc, username: str) -> None:
    async with svc.db.transaction() as session:
        admin = await session.scalar(select(Admin).where(Admin.username == username))
        if admin is not None:
            await session.execute(delete(AdminSession).where(AdminSession.admin_id == admin.id))
            await session.delete(admin)


def attach(bp) -> None:
    @bp.route("/login/sso")
    async def login_through_op_proxy():
        svc = services()
        return await flow.start(svc, AdminSignIn(ui_locales=request.args.get("lang")))

    @bp.route("/login", methods=["GET", "POST"])
    async def login():
        svc = services()
        login_token = request.cookies.get(LOGIN_CSRF_COOKIE) or random_token(24)
        if request.method == "GET":
            response = await render_page("admin/login.html", csrf_token=login_token, error=None,
                                         sso=sso_offered(svc))
            response.set_cookie(LOGIN_CSRF_COOKIE, login_token, **cookie_options(svc))
            return response
        form = await request.form
        if not csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form):
            return await render_page("admin/login.html", 400, csrf_token=login_token, sso=sso_offered(svc),
                                     error=_("The form had expired. Try again."))
        error = await check_password(svc, form.get("username", ""), form.get("password", ""))
        if error:
            # A wrong password does not take the other way in away: the organisation account stays offered.
            return await render_page("admin/login.html", 401, csrf_token=login_token, error=error,
                                     sso=sso_offered(svc))
        async with svc.db.session() as session:
            admin = await session.scalar(select(Admin).where(Admin.username == form["username"]))
        return await start_admin_session(svc, admin, redirect("/admin/", 303))

    @bp.route("/logout", methods=["POST"])
    @admin_page(changes_something=False)  # a viewer signs out too
    async def logout():
        svc = services()
        async with svc.db.transaction() as session:
            await session.execute(delete(AdminSession).where(
                AdminSession.cookie_digest == token_digest(request.cookies.get(COOKIE, ""))))
        response = redirect("/admin/login", 303)
        response.delete_cookie(COOKIE, path="/admin")
        return response


# Checked when the username is unknown, so that an unknown name costs as long as a wrong password.
_DUMMY_HASH = hash_secret(random_token())


async def count_attempt(svc, username: str, now: int) -> int | None:
    """Count this attempt before the password is checked, in one atomic UPDATE, so that guesses sent
    all at once cannot each read the same old count. The attempt's number; None while locked (or
    for an unknown name)."""
    async with svc.db.transaction() as session:
        counted = await session.execute(
            update(Admin).where(Admin.username == username,
                                or_(Admin.locked_until.is_(None), Admin.locked_until <= now))
            .values(failed_attempts=Admin.failed_attempts + 1))
        if counted.rowcount == 0:
            return None
        attempt = await session.scalar(select(Admin.failed_attempts).where(Admin.username == username))
        if attempt > MAX_FAILED_ATTEMPTS:
            # Beyond the allowance: lock now, whatever this guess is.
            await session.execute(update(Admin).where(Admin.username == username)
                                  .values(locked_until=now + LOCKOUT_SECONDS, failed_attempts=0))
        elif attempt == MAX_FAILED_ATTEMPTS:
            # The last allowed guess: the account is locked from now on unless it is right (success
            # lifts the lock); the count starts again once the lock has run out.
            await session.execute(update(Admin).where(Admin.username == username)
                                  .values(locked_until=now + LOCKOUT_SECONDS, failed_attempts=0))
    return attempt if attempt <= MAX_FAILED_ATTEMPTS else None


async def check_password(svc, username: str, password: str) -> str | None:
    """None when the password is right; otherwise the message to show. After MAX_FAILED_ATTEMPTS
    wrong guesses the account is locked for LOCKOUT_SECONDS. The message and the time taken are the
    same for a wrong password, an unknown name and a locked account, so none of them tells which
    names exist."""
    now = int(time.time())
    async with svc.db.session() as session:
        admin = await session.scalar(select(Admin).where(Admin.username == username))
    attempt = await count_attempt(svc, username, now) if admin is not None else None
    valid = await verify_secret(admin.password_hash if admin is not None else _DUMMY_HASH, password)
    if admin is None or attempt is None or not valid:
        reason = "locked" if admin is not None and attempt is None else "wrong_password"
        await audit.record(svc.db, "admin_sign_in", outcome="failure", ip=client_ip(), admin=username, reason=reason)
        return _("Wrong username or password. After %(attempts)d failed attempts an account is locked for "
                 "%(minutes)d minutes.", attempts=MAX_FAILED_ATTEMPTS, minutes=LOCKOUT_SECONDS // 60)
    async with svc.db.transaction() as session:
        await session.execute(update(Admin).where(Admin.id == admin.id).values(
            failed_attempts=0, locked_until=None, last_sign_in_at=now))
    await audit.record(svc.db, "admin_sign_in", ip=client_ip(), admin=username)
    return None
