"""The pending sign-in: what a front door asked for, kept in the database until the person has
signed in (Dex's ``storage.AuthRequest`` is the model), so any process finishes a flow another began.

Each front door has its own request type; all of them are written and read here, and nowhere else
(``to_row`` / ``from_row``): the ``params`` column holds the request's fields and its front door.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import ClassVar

from op_proxy.security import random_token, token_digest


@dataclass(kw_only=True)
class SignInRequest:
    """What every front door may say about how the person signs in (the chooser and the upstream
    read these); the front door's own fields are in its subclass."""

    front_door: ClassVar[str]
    client_id: str
    ui_locales: str | None = None  # the language the application asked for
    login_hint: str | None = None
    idp_hint: str | None = None  # the one upstream to use (skips the chooser)
    prompt: list[str] = field(default_factory=list)  # an application demanding a fresh sign-in ...
    max_age: int | None = None  # ... demands it of the upstream too

    def answered_at(self) -> str | None:
        """Where the sign-in's answer goes when it is not op-proxy itself: the application's address."""
        return None


@dataclass(kw_only=True)
class OidcRequest(SignInRequest):
    """An authorization request that passed every check of ``provider/authorize.py``."""

    front_door: ClassVar[str] = "oidc"
    redirect_uri: str
    response_mode: str = "query"
    state: str | None = None
    scope: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    claims: dict | None = None  # OIDC Core §5.5
    hinted_sub: str | None = None  # the subject of the id_token_hint

    def answered_at(self) -> str | None:
        return self.redirect_uri


@dataclass(kw_only=True)
class LegacyRequest(SignInRequest):
    """The old gateway's ``/public/login.php``."""

    front_door: ClassVar[str] = "legacy"
    redirect_uri: str
    state: str | None = None

    def answered_at(self) -> str | None:
        return self.redirect_uri


ADMIN_PANEL = "(admin panel)"
ADMIN_TEST = "(admin test)"  # no such application: every upstream is allowed


@dataclass(kw_only=True)
class AdminSignIn(SignInRequest):
    """Someone entering the admin panel through op-proxy's own sign-in."""

    front_door: ClassVar[str] = "admin"
    client_id: str = ADMIN_PANEL


@dataclass
class UpstreamTestResult:
    """Who came back from an administrator's test sign-in at an upstream."""

    sub: str
    upstream: str
    acr: str | None
    amr: list
    at: int


@dataclass(kw_only=True)
class AdminTestSignIn(SignInRequest):
    """An administrator trying an upstream with their own browser; ``result`` once they are back."""

    front_door: ClassVar[str] = "admin_test"
    client_id: str = ADMIN_TEST
    upstream: str
    admin: str  # the administrator's username: only they see the result
    result: UpstreamTestResult | None = None


REQUEST_TYPES = {kind.front_door: kind for kind in (OidcRequest, LegacyRequest, AdminSignIn, AdminTestSignIn)}


@dataclass
class PendingSignIn:
    """A pending sign-in as a request sees it. ``id`` is the secret in its URLs: only its digest is stored."""

    id: str
    request: SignInRequest
    browser_digest: str  # the browser that began it (login CSRF)
    created_at: int
    expires_at: int
    finished_at: int | None = None
    # The answer given when a password step finished, sealed, so that a browser whose answer was lost
    # can ask again (``flow.replay``).
    answer: str | None = None

    @property
    def client_id(self) -> str:
        return self.request.client_id

    @property
    def digest(self) -> str:
        return token_digest(self.id)

    def belongs_to(self, browser: str | None) -> bool:
        return browser is not None and token_digest(browser) == self.browser_digest


def new_pending(request: SignInRequest, browser: str, lifetime: int) -> PendingSignIn:
    now = int(time.time())
    return PendingSignIn(id=random_token(24), request=request, browser_digest=token_digest(browser),
                         created_at=now, expires_at=now + lifetime)


def to_row(pending: PendingSignIn) -> dict:
    """The ``pending_logins`` row of ``pending``."""
    params = {name: getattr(pending.request, name) for name in field_names(type(pending.request))}
    if isinstance(pending.request, AdminTestSignIn) and pending.request.result is not None:
        params["result"] = dataclasses.asdict(pending.request.result)
    return {"id_digest": pending.digest, "client_id": params.pop("client_id"),
            "params": {**params, "front_door": pending.request.front_door},
            "browser_digest": pending.browser_digest, "created_at": pending.created_at,
            "expires_at": pending.expires_at, "finished_at": pending.finished_at, "outcome": pending.answer}


def request_params(request: SignInRequest) -> dict:
    """The ``params`` column of ``request`` (written again when a front door adds to it)."""
    return to_row(PendingSignIn("", request, "", 0, 0))["params"]


@functools.cache
def field_names(kind: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


def from_row(login_id: str, row) -> PendingSignIn:
    params = dict(row["params"])
    kind = REQUEST_TYPES[params.pop("front_door")]
    names = set(field_names(kind)) - {"client_id"}
    fields = {name: value for name, value in params.items() if name in names}  # rows of older versions: extras
    if kind is AdminTestSignIn and fields.get("result") is not None:
        fields["result"] = UpstreamTestResult(**fields["result"])
    return PendingSignIn(id=login_id, request=kind(client_id=row["client_id"], **fields),
                         browser_digest=row["browser_digest"], created_at=row["created_at"],
                         expires_at=row["expires_at"], finished_at=row["finished_at"], answer=row["outcome"])
