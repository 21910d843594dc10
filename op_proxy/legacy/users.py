"""op-proxy's own ``users`` table (the old gateway's schema), for the PHP session mode, and each
person's role per app: the old gateway left authorisation to each app, so a role given for one
app is seen by that app only (``user_app_roles``); an app with none for the person sees
``users.role``, the person's default (``subscriber`` for everyone new)."""

from __future__ import annotations

import json
import re
import time

from sqlalchemy import select

from op_proxy.storage.models import Client, User, UserAppRole

FIELD_COLUMNS = {"id": "user_id", "email": "email", "name": "name", "firstName": "first_name",
                 "lastName": "last_name", "department": "department", "position": "position", "campus": "campus",
                 "officeName": "office_name", "facultyId": "faculty_id", "departmentId": "department_id",
                 "campusId": "campus_id"}
DEFAULT_ROLE = "subscriber"  # the seed's findOrCreateUser() and its users table
ROLE = re.compile(r"[A-Za-z0-9_.:-]{1,50}")


class RoleRefused(ValueError):
    pass


async def find_or_create_user(db, account_sub: str, profile: dict, client_id: str | None = None) -> tuple[User, str]:
    """The seed's findOrCreateUser(), keyed on the account (upstream subject), not the e-mail;
    new people get the role ``subscriber``; the profile fields are refreshed at every sign-in.
    Returns the user and their role in ``client_id``."""
    now = int(time.time())
    async with db.transaction() as session:
        user = await session.scalar(select(User).where(User.account_sub == account_sub))
        if user is None:
            user = User(account_sub=account_sub, role=DEFAULT_ROLE, created_at=now)
            session.add(user)
        for field, column in FIELD_COLUMNS.items():
            setattr(user, column, profile.get(field))
        user.name = profile.get("name") or profile.get("username") or ""
        user.groups = json.dumps(profile["groups"], ensure_ascii=False) if profile.get("groups") else None
        user.updated_at = now
        await session.flush()
        own = await session.get(UserAppRole, (user.id, client_id)) if client_id else None
        role = own.role if own is not None else user.role
    return user, role


def user_info(user: User, role: str | None = None) -> dict:
    """``$_SESSION['user_info']`` as the old gateway filled it: the users row (``role``: the
    person's role in the app the session is for)."""
    return {"id": user.id, "user_id": user.user_id, "email": user.email, "name": user.name,
            "first_name": user.first_name, "last_name": user.last_name, "role": role or user.role,
            "department": user.department, "position": user.position, "campus": user.campus,
            "office_name": user.office_name, "faculty_id": user.faculty_id, "department_id": user.department_id,
            "campus_id": user.campus_id, "groups": user.groups,
            "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(user.created_at)),
            "updated_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(user.updated_at))}


def check_role(role: str, accepted: tuple[str, ...]) -> None:
    if role not in accepted:
        raise RoleRefused(f"unknown role {role!r}: one of {', '.join(accepted)} ([legacy] roles)")


async def set_role(db, person: str, role: str, *, client_id: str | None, accepted: tuple[str, ...]) -> User:
    """``person``: the users.id or an e-mail address. ``client_id``: the PHP-session app the role
    is for; None sets the person's default (apps without a role of their own for them)."""
    check_role(role, accepted)
    now = int(time.time())
    async with db.transaction() as session:
        if client_id is not None:
            client = await session.get(Client, client_id)
            if client is None:
                raise RoleRefused(f"no client {client_id}")
            if client.mode != "php_session":
                raise RoleRefused(f"client {client_id} is not a php_session app: an app in {client.mode} mode "
                                  "gets roles from its own user handler")
        where = User.id == int(person) if person.isdigit() else User.email == person
        found = list((await session.scalars(select(User).where(where))).all())
        if not found:
            raise RoleRefused(f"no user {person}")
        if len(found) > 1:
            raise RoleRefused(f"{len(found)} users have that e-mail address; use the id (op-proxy users list)")
        user = found[0]
        if client_id is None:
            user.role, user.updated_at = role, now
        else:
            own = await session.get(UserAppRole, (user.id, client_id))
            if own is None:
                session.add(UserAppRole(user_id=user.id, client_id=client_id, role=role, updated_at=now))
            else:
                own.role, own.updated_at = role, now
    return user


async def roles_by_user(db) -> dict[int, dict[str, str]]:
    """{users.id: {client_id: role}} for every role given for one app."""
    async with db.session() as session:
        rows = (await session.scalars(select(UserAppRole).order_by(UserAppRole.client_id))).all()
    roles: dict[int, dict[str, str]] = {}
    for row in rows:
        roles.setdefault(row.user_id, {})[row.client_id] = row.role
    return roles
