"""Protocol errors (RFC 6749 §4.1.2.1 and §5.2, OIDC Core §3.1.2.6) and the pages people see."""

from __future__ import annotations


class OAuthError(Exception):
    """An error answered to a client as JSON (token, introspection, revocation, userinfo)."""

    def __init__(self, error: str, description: str = "", status: int = 400, headers: dict | None = None):
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
        super().__init__(f"{error}: {description}")
        self.error, self.description = error, description


class PageError(Exception):
    """Something a person must be told on a page of ours, never by redirecting anywhere."""

    def __init__(self, title: str, message: str, status: int = 400, *, detail: str | None = None):
        super().__init__(message)
        self.title, self.message, self.status, self.detail = title, message, status, detail
