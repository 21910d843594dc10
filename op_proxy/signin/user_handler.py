"""The app's user handler (the old gateway's API contract): after the person signed in upstream,
op-proxy POSTs ``{normalizedUser, ssoUserInfo}`` to the client's endpoint with ``X-API-SECRET``,
and the app answers with its own record of the person (with ``role``).

``ssoUserInfo`` holds only the claims this client may see (UPSTREAMS.md item 9): a client not
allowed the ``thaid`` scope never receives the national ID. Redirects are not followed, the
timeout is short, and any failure ends the sign-in on a page of ours.
"""

from __future__ import annotations

import json
import logging

import httpx

from op_proxy import audit
from op_proxy.claims.release import release
from op_proxy.claims.subjects import subject_for
from op_proxy.errors import PageError
from op_proxy.i18n import gettext as _
from op_proxy.security import unseal
from op_proxy.web import client_ip

log = logging.getLogger("op_proxy.user_handler")

NORMALIZED_FIELDS = ("id", "username", "name", "firstName", "lastName", "email", "department", "position",
                     "campus", "officeName", "facultyId", "departmentId", "campusId", "groups")
TIMEOUT_SECONDS = 5.0


class UserHandlerFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def normalized_user(profile: dict, sub: str) -> dict:
    """The old gateway's 14 fields. Where the upstream has no id or username of its own to give (ThaID:
    its only id is the national ID, never passed on), both are ``sub``, op-proxy's stable id for the
    person at this app, so an app can key its own user record on them."""
    user = {name: profile.get(name) for name in NORMALIZED_FIELDS}
    for field in ("id", "username"):
        if user[field] in (None, ""):
            user[field] = sub
    return user


def payload(profile: dict, sub: str, scopes: list[str], allowed_scopes) -> dict:
    return {
        "normalizedUser": normalized_user(profile, sub),
        "ssoUserInfo": {"sub": sub, **release(profile, scopes, None, allowed_scopes)},
    }


async def ask_app(http: httpx.AsyncClient, client, api_secret: str, profile: dict, sub: str,
                  scopes: list[str]) -> dict:
    """``sub`` is the one this client knows the person by; ``api_secret`` its X-API-SECRET, unsealed."""
    # The app's answer (a JSON object), or UserHandlerFailed with a reason fit for the audit log.
    body = json.dumps(payload(profile, sub, scopes, client.allowed_scopes), ensure_ascii=False).encode()
    try:
        response = await http.post(client.user_handler_endpoint, content=body, timeout=TIMEOUT_SECONDS,
                                   headers={"Content-Type": "application/json",
                                            "X-API-SECRET": api_secret})
    except httpx.TimeoutException:
        raise UserHandlerFailed("timeout") from None
    except httpx.HTTPError as exc:
        raise UserHandlerFailed(f"unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise UserHandlerFailed(f"HTTP {response.status_code}")
    try:
        answer = response.json()
    except ValueError:
        raise UserHandlerFailed("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise UserHandlerFailed("the answer is not a JSON object")
    return answer


async def app_user_for(svc, client, signed_in, scopes: list[str]) -> dict | None:
    """The application's record of the person who ``signed_in`` (None if it has no user handler), or
    a page of ours saying the application did not accept the sign-in."""
    if not client.user_handler_endpoint:
        return None
    sub = signed_in.session.sub
    try:
        api_secret = unseal(svc.keyring.data_key(), client.user_handler_secret)
        answer = await ask_app(svc.http, client, api_secret, signed_in.account.profile,
                               subject_for(sub, client, svc.keyring.subject_salt()), scopes)
    except UserHandlerFailed as failure:
        await audit.record(svc.db, "user_handler", outcome="failure", client_id=client.client_id, sub=sub,
                           ip=client_ip(), reason=failure.reason)
        raise PageError(_("The application could not sign you in"),
                        _("%(app)s did not accept the sign-in (its user service answered: %(reason)s). Try again "
                          "later or contact the application's administrator.", app=client.name,
                          reason=failure.reason), 502) from None
    await audit.record(svc.db, "user_handler", client_id=client.client_id, sub=sub, ip=client_ip(),
                       role=answer.get("role"))
    return answer
