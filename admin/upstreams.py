"""Identity providers: each configured upstream with its health (discovery and JWKS reachable, the age
of its newest key), its last error and last successful sign-in, and a test sign-in through op-proxy's
own flow that ends on an admin page showing the claims that came back."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field, replace

import httpx
from quart import g, redirect
from sqlalchemy import select

from admin import formatting
from admin.auth import admin_page
from op_proxy import i18n
from op_proxy.errors import PageError
from op_proxy.i18n import N_
from op_proxy.i18n import gettext as _
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.pending import ADMIN_TEST, AdminTestSignIn, PendingSignIn, UpstreamTestResult
from op_proxy.signin.sessions import account_by_sub, end_session
from op_proxy.storage.models import AuditEvent
from op_proxy.upstreams.oidc import OidcConnector
from op_proxy.web import render_page

PROBE_TIMEOUT = 3.0  # seconds: a health page must answer even when every upstream is down
TEST_CLIENT_ID = ADMIN_TEST  # no such application: every upstream is allowed

KIND_LABELS = {
    "local": N_("Built-in password list"),
    "oidc": N_("OpenID Connect"),
    "thaid": N_("ThaID"),
}


@dataclass
class Probe:
    """One GET to an upstream: "ok", "unreachable" (network, timeout, 5xx), "error" (any other
    answer) or "unchecked" (nothing to ask yet)."""

    state: str
    detail: str | None = None
    body: dict | None = field(default=None, repr=False)


@dataclass
class Health:
    connector: object
    discovery: Probe | None = None
    jwks: Probe | None = None
    newest_key_at: int | None = None
    last_failure: AuditEvent | None = None
    last_success: AuditEvent | None = None


async def probe(http: httpx.AsyncClient, url: str | None, timeout: float) -> Probe:
    if not url:
        return Probe("unchecked")
    try:
        response = await http.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe("unreachable", type(exc).__name__)
    if response.status_code >= 500:
        return Probe("unreachable", f"HTTP {response.status_code}")
    if response.status_code != 200:
        return Probe("error", f"HTTP {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        return Probe("error", _("not JSON"))
    if not isinstance(body, dict):
        return Probe("error", _("not a JSON object"))
    return Probe("ok", None, body)


def key_created_at(key: dict) -> int | None:
    """When a published key was made, if its JWK says: ``iat``/``nbf``, or its certificate's start."""
    stamps = [int(key[name]) for name in ("iat", "nbf") if isinstance(key.get(name), (int, float))]
    chain = key.get("x5c")
    if isinstance(chain, list) and chain:
        try:
            from cryptography import x509

            certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
            stamps.append(int(certificate.not_valid_before_utc.timestamp()))
        except (ValueError, TypeError):
            pass
    return max(stamps) if stamps else None


def newest_key_at(jwks: dict | None) -> int | None:
    keys = (jwks or {}).get("keys")
    if not isinstance(keys, list):
        return None
    stamps = [key_created_at(key) for key in keys if isinstance(key, dict) and key.get("use", "sig") == "sig"]
    stamps = [stamp for stamp in stamps if stamp is not None]
    return max(stamps) if stamps else None


async def newest_sign_in(svc: Services, upstream: str, outcome: str) -> AuditEvent | None:
    async with svc.db.session() as session:
        return await session.scalar(
            select(AuditEvent).where(AuditEvent.event == "sign_in", AuditEvent.outcome == outcome,
                                     AuditEvent.upstream == upstream)
            .order_by(AuditEvent.id.desc()).limit(1))


async def reachability(svc: Services, connector, health: Health) -> None:
    if not isinstance(connector, OidcConnector):  # local: nothing on the network to ask
        return
    config = connector.config
    timeout = min(config.timeout, PROBE_TIMEOUT)
    health.discovery = await probe(svc.http, config.discovery_url, timeout)
    jwks_uri = config.endpoints.get("jwks_uri") or (health.discovery.body or {}).get("jwks_uri")
    health.jwks = await probe(svc.http, jwks_uri, timeout)
    health.newest_key_at = newest_key_at(health.jwks.body)


async def check(svc: Services, connector) -> Health:
    health = Health(connector)
    _, health.last_failure, health.last_success = await asyncio.gather(
        reachability(svc, connector, health),
        newest_sign_in(svc, connector.name, "failure"),
        newest_sign_in(svc, connector.name, "success"))
    return health


def failure_text(event: AuditEvent | None) -> str:
    """What went wrong, from an audit event's detail (reason, error, detail): never secrets."""
    if event is None:
        return ""
    detail = event.detail or {}
    parts = [str(detail[key]) for key in ("reason", "error", "detail") if detail.get(key)]
    return formatting.mask_ids(" · ".join(parts))


def connector_or_404(svc: Services, name: str):
    connector = svc.connectors.get(name)
    if connector is None:
        raise PageError(_("Identity provider not found"), _("There is no identity provider %(name)s.", name=name),
                        404)
    return connector


def masked_profile(profile: dict) -> dict:
    """The profile as the test result shows it: ``pid`` and anything like a national ID masked."""
    shown = formatting.mask_ids(dict(profile))
    if profile.get("pid") not in (None, ""):
        shown["pid"] = formatting.mask_pid(profile["pid"])
    return shown


async def finish_admin_test(svc: Services, pending: PendingSignIn, signed_in):
    """The test sign-in worked: remember who came back, end the test session (the admin's browser
    must not stay signed in as the person tested), then on to the admin result page."""
    sso = signed_in.session
    result = UpstreamTestResult(sub=sso.sub, upstream=sso.upstream, acr=sso.acr, amr=sso.amr, at=sso.auth_time)

    async def to_the_result():
        await end_session(svc.db, sso, reason="admin_test")
        return redirect(f"/admin/upstreams/{pending.request.upstream}/test/{pending.id}", 303)

    async def ended_before():
        raise PageError(_("Sign-in already finished"), _("This test sign-in has already been completed."))

    return flow.Ending(answer_after=to_the_result, amended=replace(pending.request, result=result),
                       if_ended_before=ended_before)


async def test_result_page(svc: Services, connector, *, pending: PendingSignIn | None, failure: str | None = None,
                           status: int = 200):
    result = pending.request.result if pending else None
    account = await account_by_sub(svc.db, result.sub) if result else None
    failure_event = None
    if pending is not None and result is None and failure is None:
        async with svc.db.session() as session:
            failure_event = await session.scalar(
                select(AuditEvent).where(AuditEvent.event == "sign_in", AuditEvent.outcome == "failure",
                                         AuditEvent.client_id == TEST_CLIENT_ID,
                                         AuditEvent.upstream == connector.name,
                                         AuditEvent.at >= pending.created_at)
                .order_by(AuditEvent.id.desc()).limit(1))
        failure = failure_text(failure_event) or None
    return await render_page("admin/upstream_test.html", status, upstream=connector, result=result,
                             profile=masked_profile(account.profile) if account else None, failure=failure,
                             failure_at=failure_event.at if failure_event else None,
                             started_at=pending.created_at if pending else None)


def attach(bp) -> None:
    formatting.register_labels(bp, "upstream_kind_label", KIND_LABELS)

    @bp.route("/upstreams")
    @admin_page()
    async def upstreams_list():
        svc = services()
        healths = await asyncio.gather(*(check(svc, connector) for connector in svc.connectors.values()))
        return await render_page("admin/upstreams.html", healths=healths, failure_text=failure_text)

    @bp.route("/upstreams/<name>/test")
    @admin_page()
    async def upstream_test(name: str):
        """Starts a real sign-in at this upstream for the admin's own browser."""
        svc = services()
        connector = connector_or_404(svc, name)
        if isinstance(connector, OidcConnector):  # no point sending the admin to an upstream that cannot be reached
            config = connector.config
            discovery = await probe(svc.http, config.discovery_url, min(config.timeout, PROBE_TIMEOUT))
            if discovery.state != "ok":
                message = _("Its discovery document could not be fetched (%(detail)s).",
                            detail=discovery.detail or discovery.state)
                return await test_result_page(svc, connector, pending=None, failure=message, status=502)
        return await flow.start(svc, AdminTestSignIn(upstream=name, idp_hint=name, admin=g.admin.username,
                                                     ui_locales=i18n.current_locale()))

    @bp.route("/upstreams/<name>/test/<login_id>")
    @admin_page()
    async def upstream_test_result(name: str, login_id: str):
        svc = services()
        connector = connector_or_404(svc, name)
        pending = await flow.find(svc, login_id)
        if (pending is None or not isinstance(pending.request, AdminTestSignIn)
                or pending.request.upstream != name or pending.request.admin != g.admin.username
                or not flow.belongs_to_this_browser(pending)):
            raise PageError(_("Test sign-in not found"),
                            _("This test sign-in was not started by you in this browser. Start a new one."), 404)
        return await test_result_page(svc, connector, pending=pending)
