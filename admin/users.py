"""Users and roles: op-proxy's ``users`` table (the PHP session mode's people), searched by name or
e-mail, 50 a page, and a role an admin changes (the app sees it from the person's next sign-in).
National ID numbers are never shown: anything that looks like one is masked."""

from __future__ import annotations

import math
import time
from urllib.parse import urlencode

from quart import redirect, request
from sqlalchemy import func, or_, select

from admin.auth import admin_page, record_admin_action
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.masking import NATIONAL_ID
from op_proxy.services import services
from op_proxy.storage.models import User
from op_proxy.web import render_page

PAGE_SIZE = 50
MAX_ROLE_LENGTH = 50


def page_number(value: str | None) -> int:
    try:
        return max(1, int(value or 1))
    except ValueError:
        return 1


async def users_page(*, error: str | None = None, status: int = 200):
    query = request.args.get("q", "").strip()
    page = page_number(request.args.get("page"))
    condition = None
    if query:
        like = f"%{query}%"
        condition = or_(User.name.like(like), User.email.like(like))
    count = select(func.count()).select_from(User)
    listing = select(User).order_by(User.id)
    if condition is not None:
        count, listing = count.where(condition), listing.where(condition)
    async with services().db.session() as session:
        total = await session.scalar(count)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        page = min(page, pages)
        found = list((await session.scalars(listing.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))).all())
    return await render_page("admin/users.html", status, users=found, query=query, page=page, pages=pages,
                             total=total, error=error, max_role_length=MAX_ROLE_LENGTH,
                             saved=request.args.get("saved"))


def attach(bp) -> None:
    @bp.route("/users")
    @admin_page()
    async def users_list():
        return await users_page()

    @bp.route("/users/<int:user_id>/role", methods=["POST"])
    @admin_page()
    async def user_role(user_id: int):
        role = (await request.form).get("role", "").strip()
        if not role or len(role) > MAX_ROLE_LENGTH:
            return await users_page(error=_("A role is 1 to %(max)d characters.", max=MAX_ROLE_LENGTH), status=400)
        if NATIONAL_ID.search(role):  # a role is seen by every admin and app: never a person's national ID
            return await users_page(error=_("A role cannot hold a national ID number."), status=400)
        async with services().db.transaction() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise PageError(_("Person not found"), _("There is no person %(id)s.", id=user_id), 404)
            previous, user.role, user.updated_at = user.role, role, int(time.time())
        await record_admin_action("user_role_changed", user_id=user_id, role=role, previous_role=previous)
        back = {key: request.args[key] for key in ("q", "page") if request.args.get(key)}
        return redirect("/admin/users?" + urlencode({"saved": user_id, **back}), 303)
