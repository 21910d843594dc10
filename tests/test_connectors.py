"""The upstream contract: what each kind of connector can do is what it declares (upstreams/base.py),
and each kind of sign-in is handed back to the front door the application was made with."""

import asyncio

import httpx
import pytest

from op_proxy.config import LocalUser, UpstreamSettings, parse_oidc_upstream
from op_proxy.config import _Reader as Reader
from op_proxy.security import hash_secret
from op_proxy.upstreams.base import (
    CallbackConnector,
    LoggingOutConnector,
    LoginFailed,
    PasswordConnector,
    RefreshingConnector,
    is_a,
)
from op_proxy.upstreams.local import LocalConnector
from op_proxy.upstreams.oidc import OidcConnector
from op_proxy.upstreams.thaid import ThaidConnector


def local_upstream() -> LocalConnector:
    user = LocalUser("somchai", hash_secret("correct horse"), {"name": "สมชาย ใจดี"})
    return LocalConnector(UpstreamSettings("local", "local", {"en": "Demo accounts"}, users=(user,)))


def oidc_upstream(kind: type[OidcConnector], name: str) -> OidcConnector:
    table = {"issuer": "https://idp.example", "client_id": "op-proxy", "client_secret": "s"}
    settings = UpstreamSettings(name, kind.kind, {"en": name}, oidc=parse_oidc_upstream(
        Reader("test", table, f"upstreams.{name}"), name))
    return kind(settings, issuer="https://op.example", http=httpx.AsyncClient())


def test_the_local_connector_takes_a_password_and_nothing_else():
    local = local_upstream()
    assert isinstance(local, PasswordConnector)
    assert not isinstance(local, (CallbackConnector, RefreshingConnector, LoggingOutConnector))
    person = asyncio.run(local.login(" somchai ", "correct horse"))
    assert (person.upstream, person.subject, person.profile, person.amr) == \
        ("local", "somchai", {"name": "สมชาย ใจดี"}, ["pwd"])
    for username, password in (("somchai", "wrong"), ("nobody", "correct horse")):
        with pytest.raises(LoginFailed) as failure:
            asyncio.run(local.login(username, password))
        assert failure.value.reason == "wrong_password"


@pytest.mark.parametrize("kind", [OidcConnector, ThaidConnector])
def test_an_oidc_upstream_is_left_for_and_can_refresh_and_sign_out(kind):
    upstream = oidc_upstream(kind, "psu")
    assert isinstance(upstream, CallbackConnector) and upstream.callback_path == "/callback/psu"
    assert isinstance(upstream, RefreshingConnector) and isinstance(upstream, LoggingOutConnector)
    assert not isinstance(upstream, PasswordConnector)


def test_what_a_connector_can_do_is_asked_once_per_kind_and_answered_alike_every_time():
    """The flow asks ``is_a`` (isinstance, remembered per class): a local upstream never passes for
    one that refreshes because an OIDC upstream was asked about first, nor the other way round."""

    class NotAConnector:
        name, kind, display_name = "x", "x", {}

    kinds = (PasswordConnector, CallbackConnector, RefreshingConnector, LoggingOutConnector)
    upstreams = [oidc_upstream(OidcConnector, "psu"), local_upstream(), oidc_upstream(ThaidConnector, "thaid"),
                 NotAConnector(), None]
    for _ in range(2):  # the second time from what was remembered
        for upstream in upstreams:
            assert [is_a(upstream, kind) for kind in kinds] == [isinstance(upstream, kind) for kind in kinds]
    assert [is_a(upstreams[1], kind) for kind in kinds] == [True, False, False, False]
    assert [is_a(upstreams[0], kind) for kind in kinds] == [False, True, True, True]


def test_an_application_leaving_a_kind_of_sign_in_without_a_front_door_does_not_start():
    from op_proxy.signin import flow
    from op_proxy.signin.pending import REQUEST_TYPES

    with pytest.raises(ValueError, match="no front door finishes AdminTestSignIn"):
        flow.front_doors({kind: None for kind in REQUEST_TYPES.values() if kind.__name__ != "AdminTestSignIn"})
