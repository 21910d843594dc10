"""op-proxy's own ``users`` table (the old gateway's schema), for the PHP session mode."""

from __future__ import annotations

import json
import time

from sqlalchemy import select

from op_proxy.storage.models import User

FIELD_COLUMNS = {"id": "user_id", "email": "email", "name": "name", "firstName": "first_name",
                 "lastName": "last_name", "department": "department", "position": "position", "campus": "campus",
                 "officeName": "office_name", "facultyId": "faculty_id", "departmentId": "department_id",
                 "campusId": "campus_id"}


async def find_or_create_user(db, account_sub: str, profile: dict) -> User:
    """The seed's findOrCreateUser(), keyed on the account (upstream subject), not the e-mail;
    new people get the role ``subscriber``; the profile fields are refreshed at every sign-in."""
    now = int(time.time())
    async with db.transaction() as session:
        user = await session.scalar(select(User).where(User.account_sub == account_sub))
        if user is None:
            user = User(account_sub=account_sub, role="subscriber", created_at=now)
            session.add(user)
        for field, column in FIELD_COLUMNS.items():
            setattr(user, column, profile.get(field))
        user.name = profile.get("name") or profile.get("username") or ""
        user.groups = json.dumps(profile["groups"], ensure_ascii=False) if profile.get("groups") else None
        user.updated_at = now
    return user


def user_info(user: User) -> dict:
    """``$_SESSION['user_info']`` as the old gateway filled it: the users row."""
    return {"id": user.id, "user_id": user.user_id, "email": user.email, "name": user.name,
            "first_name": user.first_name, "last_name": user.last_name, "role": user.role,
            "department": user.department, "position": user.position, "campus": user.campus,
            "office_name": user.office_name, "faculty_id": user.faculty_id, "department_id": user.department_id,
            "campus_id": user.campus_id, "groups": user.groups,
            "created_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(user.created_at)),
            "updated_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(user.updated_at))}
