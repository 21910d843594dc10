"""One family of errors: everything op-proxy refuses is a ``Refusal``, one class per error code
(RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, OIDC Core §3.1.2.6, RFC 7009 §2.2.1, RFC 8628 §3.5).

A class says *what* went wrong; *how* it is answered is decided in one place, by the error handlers
``op_proxy.provider.responses.register_error_handlers`` puts on the app: a redirect to the client's
verified redirect URI when the error carries one (``to_client``), JSON to the endpoints applications
call, a translated page for people everywhere else. Models: Authlib's ``OAuth2Error`` and
``rfc6749/errors.py``, node-oidc-provider's ``lib/helpers/errors.js``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from op_proxy.i18n import N_

# The database cannot be reached or does not answer: nothing a retry a little later would not fix.
# (The app answers them with ``DatabaseUnavailable``: 503 temporarily_unavailable.)
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError)

# RFC 6749 §4.1.2.1 and §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so
# what a client sent (a parameter name, a prompt value) is never echoed as quotes, backslashes,
# control characters or anything outside printable ASCII.
_OUTSIDE_ERROR_DESCRIPTION_CHARACTERS = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')
MAX_DESCRIPTION_LENGTH = 200
REALM = "op-proxy"


def error_description(text: str | None) -> str:
    """``text`` made safe to send as an ``error_description`` (JSON body, redirect or header)."""
    if not text:
        return ""
    safe = _OUTSIDE_ERROR_DESCRIPTION_CHARACTERS.sub("?", text)
    return safe if len(safe) <= MAX_DESCRIPTION_LENGTH else safe[:MAX_DESCRIPTION_LENGTH - 3] + "..."


@dataclass(frozen=True)
class ClientRedirect:
    """Where an authorization error goes back to. Only ever made from a redirect URI already found
    among the client's registered ones: an unverified one gets a page of ours instead (RFC 6749
    §4.1.2.1, RFC 9700 §4.1)."""

    redirect_uri: str
    response_mode: str
    state: str | None


class Refusal(Exception):
    """The base of the family: an RFC error code, its HTTP status, a sanitised description, the
    headers the answer must carry, and (for people) the translated title and message of its page."""

    error: ClassVar[str] = "invalid_request"
    status: int = 400
    page_title: ClassVar[str] = N_("Request refused")
    page_message: ClassVar[str] = N_("This address cannot answer that request (%(error)s). Go back and try again.")

    def __init_subclass__(cls, *, error: str | None = None, status: int | None = None, **kwargs):
        """A code and its status, said where the class is named: ``class SlowDown(Refusal, error="slow_down",
        status=429): ...``."""
        super().__init_subclass__(**kwargs)
        if error is not None:
            cls.error = error
        if status is not None:
            cls.status = status

    def __init__(self, description: str = "", *, status: int | None = None, headers: dict | None = None):
        self.description = error_description(description)
        super().__init__(f"{self.error}: {self.description}")
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.redirect: ClientRedirect | None = None

    def body(self) -> dict:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def to_client(self, redirect_uri: str, response_mode: str, state: str | None) -> Self:
        """Answer with a redirect to ``redirect_uri``, which the caller has verified."""
        self.redirect = ClientRedirect(redirect_uri, response_mode, state)
        return self

    def bearer_challenge(self, *, naming_the_error: bool = True) -> Self:
        """RFC 6750 §3: a refused bearer token is answered with a challenge; a request that sent no
        token at all gets one without an error code (§3.1)."""
        challenge = f'Bearer realm="{REALM}"'
        if naming_the_error:
            challenge += f', error="{self.error}", error_description="{self.description}"'
        self.headers["WWW-Authenticate"] = challenge
        return self


# -- RFC 6749 §4.1.2.1 (authorization) and §5.2 (token) ----------------------------------------------

class InvalidRequest(Refusal, error="invalid_request"): ...
class InvalidGrant(Refusal, error="invalid_grant"): ...
class UnauthorizedClient(Refusal, error="unauthorized_client"): ...
class UnsupportedGrantType(Refusal, error="unsupported_grant_type"): ...
class UnsupportedResponseType(Refusal, error="unsupported_response_type"): ...
class InvalidScope(Refusal, error="invalid_scope"): ...
class AccessDenied(Refusal, error="access_denied"): ...


class InvalidClient(Refusal, error="invalid_client", status=401):
    def __init__(self, description: str = "client authentication failed"):
        # RFC 6749 §5.2: 401 with WWW-Authenticate naming the scheme the client may use.
        super().__init__(description, headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})


class TemporarilyUnavailable(Refusal, error="temporarily_unavailable", status=503):
    page_title = N_("Temporarily unavailable")


class DatabaseUnavailable(TemporarilyUnavailable):
    """Nothing was changed and a retry a little later will do: said with Retry-After."""

    RETRY_AFTER_SECONDS = "30"
    page_message = N_("op-proxy cannot reach its database right now. Nothing was changed; try again in a minute.")

    def __init__(self):
        super().__init__("the service cannot reach its database; try again shortly",
                         headers={"Retry-After": self.RETRY_AFTER_SECONDS, "Cache-Control": "no-store"})


# -- RFC 6750 §3.1 (bearer tokens, at the UserInfo endpoint) -----------------------------------------

class InvalidToken(Refusal, error="invalid_token", status=401): ...
class InsufficientScope(Refusal, error="insufficient_scope", status=403): ...


# -- OIDC Core §3.1.2.6 ------------------------------------------------------------------------------

class InteractionRequired(Refusal, error="interaction_required"): ...
class LoginRequired(Refusal, error="login_required"): ...
class ConsentRequired(Refusal, error="consent_required"): ...
class RequestNotSupported(Refusal, error="request_not_supported"): ...
class RequestUriNotSupported(Refusal, error="request_uri_not_supported"): ...


# -- RFC 7009 §2.2.1 and RFC 8628 §3.5 (the client-secret throttle answers it with 429) --------------

class UnsupportedTokenType(Refusal, error="unsupported_token_type"): ...
class SlowDown(Refusal, error="slow_down", status=429): ...


# -- For people ---------------------------------------------------------------------------------------

class PageError(Refusal):
    """Something a person must be told on a page of ours, never by redirecting anywhere; ``detail``
    goes to the log only."""

    def __init__(self, title: str, message: str, status: int = 400, *, detail: str | None = None):
        super().__init__(status=status)
        self.title, self.message, self.detail = title, message, detail
        self.args = (message,)

