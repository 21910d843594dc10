"""The whole upstream contract (after Dex's ``connector/connector.go``).

Every connector is one of two kinds, told apart with ``isinstance``:

- a ``PasswordConnector`` checks a username and password typed into op-proxy's own password form;
- a ``CallbackConnector`` sends the person to the upstream and turns what comes back to its callback
  into an ``Identity``. The sign-in flow makes the ``state`` and checks it on the way back; the
  connector only puts it in the URL. What else the connector must remember until then (its nonce,
  its PKCE verifier) it returns as ``ConnectorData``, which the flow keeps unread and hands back.

What a connector can do besides signing people in is a capability of its own, checked with
``isinstance`` too: ``RefreshingConnector`` (asked again when an app refreshes its tokens) and
``LoggingOutConnector`` (the person is sent on to sign out upstream as well).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Identity:
    upstream: str
    # The upstream's own stable id for the person: accounts are keyed on (upstream, subject).
    subject: str
    # The normalized profile (the old gateway's 14 fields plus ThaID's claims).
    profile: dict[str, Any]
    acr: str | None = None
    amr: list[str] = field(default_factory=list)
    # The upstream's tokens, kept with the SSO session (for upstream logout and refresh).
    upstream_id_token: str | None = None
    upstream_refresh_token: str | None = None
    # When the person really authenticated, as the upstream says (its ID token's auth_time); None: now.
    auth_time: int | None = None

    def authenticated_at(self, now: int) -> int:
        """The auth_time op-proxy reports: the upstream's, which may be long before this sign-in when
        the upstream answered from its own session (never in the future)."""
        return min(self.auth_time, now) if self.auth_time is not None else now


@dataclass(frozen=True)
class LoginHints:
    """What the application said about this sign-in that the upstream should hear too."""

    login_hint: str | None = None
    ui_locales: str | None = None
    # An application demanding a fresh sign-in (prompt=login, max_age) demands it of the upstream too.
    prompt: tuple[str, ...] = ()
    max_age: int | None = None


@dataclass(frozen=True)
class ConnectorData:
    """What a callback connector keeps server-side between sending the person away and their coming
    back. The flow stores it with the pending upstream login (one column per field of
    ``upstream_logins``) and hands it back unread."""

    nonce: str | None = None
    code_verifier: str | None = None  # PKCE (RFC 7636)


# -- what goes wrong upstream ---------------------------------------------------------------------------

class LoginFailed(Exception):
    """The person could not be signed in; ``reason`` is a message id shown to them, translated.
    ``error`` is an OAuth error code the upstream sent, ``detail`` what failed, for the log only."""

    error: str | None = None
    detail: str | None = None

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class UpstreamUnavailable(LoginFailed):
    """Discovery, token or JWKS request failed: the upstream is down, slow or answered 5xx."""

    def __init__(self, detail: str):
        super().__init__("upstream_unavailable")
        self.detail = detail


class UpstreamRefused(LoginFailed):
    """The upstream's answer did not pass our checks; ``detail`` says which (for the log)."""

    def __init__(self, detail: str):
        super().__init__("upstream_refused")
        self.detail = detail


class UpstreamError(LoginFailed):
    """The upstream sent an OAuth error to the callback (``user_denied``, ``duplicate_request`` ...)."""

    def __init__(self, error: str, description: str | None):
        super().__init__("cancelled" if error in ("access_denied", "user_denied") else "upstream_error")
        self.error, self.description = error, description


# -- the connectors -------------------------------------------------------------------------------------

@runtime_checkable
class Connector(Protocol):
    name: str
    kind: str  # "local", "oidc", "thaid": the configuration's ``kind``
    display_name: dict[str, str]  # per language


@runtime_checkable
class PasswordConnector(Connector, Protocol):
    """Signs people in with a username and password typed into op-proxy's own password form."""

    async def login(self, username: str, password: str) -> Identity:
        """The person, if the password is theirs; else ``LoginFailed``."""
        ...


@runtime_checkable
class CallbackConnector(Connector, Protocol):
    """Signs people in at the upstream, which sends them back to ``callback_path`` (one per upstream:
    the mix-up defence of RFC 9700 §4.4)."""

    callback_path: str

    async def login_url(self, state: str, hints: LoginHints) -> tuple[str, ConnectorData]:
        """Where to send the person, carrying ``state``; and what to keep until they are back."""
        ...

    async def handle_callback(self, data: ConnectorData, params: dict[str, str]) -> Identity:
        """What the upstream sent to the callback (its state already checked by the flow), with the
        ``data`` kept when the person left, as the person it names; else ``LoginFailed``."""
        ...


@runtime_checkable
class RefreshingConnector(Protocol):
    """Asked whether the person is still good upstream when an app refreshes its tokens (Dex's
    RefreshConnector; OIDC Core §12)."""

    async def refresh(self, refresh_token: str, subject: str) -> Identity:
        """The person as the upstream sees them now (a new refresh token, if it issued one);
        ``UpstreamUnavailable`` if it cannot be asked, another ``LoginFailed`` if it says no."""
        ...


@runtime_checkable
class LoggingOutConnector(Protocol):
    """Has a sign-out of its own that the person is sent on to (RP-Initiated Logout 1.0)."""

    async def end_session_url(self, id_token: str | None, post_logout_redirect_uri: str, state: str) -> str | None:
        """Where to send the person to sign out upstream too, if anywhere."""
        ...


_KINDS: dict[tuple[type, type], bool] = {}


def is_a(connector, kind: type) -> bool:
    """``isinstance(connector, kind)`` for the protocols above, worked out once per connector class:
    Python 3.11 works a runtime-checkable protocol's members out again on every ``isinstance`` (tens
    of microseconds; a sign-in asks several times). Every connector of one class has the same members."""
    key = (type(connector), kind)
    known = _KINDS.get(key)
    if known is None:
        known = _KINDS[key] = isinstance(connector, kind)
    return known
