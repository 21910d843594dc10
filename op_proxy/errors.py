"""Protocol errors (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6) and the pages people see."""

from __future__ import annotations

import re

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# The database cannot be reached or does not answer: nothing a retry a little later would not fix.
# (The app answers them with 503; see ``database_unavailable`` in app.py.)
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError)

# RFC 6749 §4.1.2.1 and §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so
# what a client sent (a parameter name, a prompt value) is never echoed as quotes, backslashes,
# control characters or anything outside printable ASCII.
_OUTSIDE_ERROR_DESCRIPTION_CHARACTERS = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
MAX_DESCRIPTION_LENGTH = 200


def error_description(text: str | None) -> str:
    """``text`` made safe to send as an ``error_description`` (JSON body, redirect or header)."""
    if not text:
        return ""
    safe = _OUTSIDE_ERROR_DESCRIPTION_CHARACTERS.sub("?", text)
    return safe if len(safe) <= MAX_DESCRIPTION_LENGTH else safe[:MAX_DESCRIPTION_LENGTH - 3] + "..."


class OAuthError(Exception):
    """An error answered to a client as JSON (token, introspection, revocation, userinfo)."""

    def __init__(self, error: str, description: str = "", status: int = 400, headers: dict | None = None):
        description = error_description(description)
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status
        self.headers = headers or {}

    def body(self) -> dict:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidClient(OAuthError):
    def __init__(self, description: str = "client authentication failed"):
        # RFC 6749 §5.2: 401 with WWW-Authenticate naming the scheme the client may use.
        super().__init__("invalid_client", description, 401,
                         {"WWW-Authenticate": 'Basic realm="op-proxy", charset="UTF-8"'})


class InvalidGrant(OAuthError):
    def __init__(self, description: str):
        super().__init__("invalid_grant", description)


class RedirectableError(Exception):
    """An authorization error that goes back to the client's (already verified) redirect URI."""

    def __init__(self, error: str, description: str = ""):
        description = error_description(description)
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description


class PageError(Exception):
    """Something a person must be told on a page of ours, never by redirecting anywhere."""

    def __init__(self, title: str, message: str, status: int = 400, *, detail: str | None = None):
        super().__init__(message)
        self.title, self.message, self.status, self.detail = title, message, status, detail
