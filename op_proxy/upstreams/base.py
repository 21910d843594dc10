"""The whole upstream contract (after Dex's ``connector.go``).

A connector starts a login (where to send the person, and what to keep server-side until they
come back: state, nonce, PKCE verifier) and finishes it (what came back → an ``Identity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


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
class LoginStart:
    redirect_url: str
    kept: dict[str, Any] = field(default_factory=dict)


class LoginFailed(Exception):
    """The person could not be signed in; ``reason`` is a message id shown to them, translated."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Connector(Protocol):
    name: str
    display_name: dict[str, str]

    async def start_login(self, login_id: str, hints: dict[str, str]) -> LoginStart: ...

    async def finish_login(self, response: dict[str, str], kept: dict[str, Any]) -> Identity: ...
