"""The token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3): one handler per grant type, each a short
list of named steps: authenticate the client, consume the grant, mint the tokens."""

from __future__ import annotations

import time

from quart import Blueprint

from op_proxy import audit
from op_proxy.claims.release import SCOPE_CLAIMS
from op_proxy.clients.authentication import authenticate_client
from op_proxy.errors import InvalidGrant, InvalidRequest, InvalidScope, UnsupportedGrantType
from op_proxy.provider.api import ApiRequest, Endpoint
from op_proxy.provider.pkce import verifier_matches
from op_proxy.provider.responses import allow_registered_origins
from op_proxy.security import token_digest
from op_proxy.services import Services
from op_proxy.signin.upstream_session import refresh_at_upstream
from op_proxy.storage import operations
from op_proxy.storage.models import Client, Grant
from op_proxy.upstreams.base import RefreshingConnector, is_a

blueprint = Blueprint("token", __name__)
blueprint.after_request(allow_registered_origins)  # single-page applications redeem their codes here


def client_audiences(svc: Services) -> set[str]:
    """Where a private_key_jwt assertion may be addressed (OIDC Core §9: the token endpoint)."""
    return {svc.settings.issuer, svc.endpoint("/token")}


async def token(svc: Services, request: ApiRequest) -> dict:
    form = request.form
    refuse_repeated_parameters(form)
    client = await authenticate_client(svc.db, form, request.authorization, client_audiences(svc))
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    handler = GRANT_HANDLERS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantType(f"grant_type {grant_type!r} is not supported")
    return await handler(svc, client, request)


def refuse_repeated_parameters(form) -> None:
    """RFC 6749 §3.2: parameters must not be repeated; taking the first of two grant_types (or
    codes) would act on a request the client did not unambiguously make."""
    repeated = sorted(name for name, values in form.lists() if len(values) > 1)
    if repeated:
        raise InvalidRequest(f"parameter {repeated[0]} is repeated")


async def revoke_grant(svc: Services, grant_id: str, reason: str) -> None:
    """Revoking a grant revokes every access and refresh token issued under it."""
    await operations.revoke_grant(svc.db, grant_id, reason)


# -- authorization_code (RFC 6749 §4.1.3) ------------------------------------------------------------

def check_code_belongs(code, client: Client, form) -> None:
    if code["client_id"] != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client")
    if code["expires_at"] <= time.time():
        raise InvalidGrant("the authorization code has expired")
    # RFC 6749 §4.1.3: the same redirect_uri as in the authorization request, exactly.
    if form.get("redirect_uri") != code["redirect_uri"]:
        raise InvalidGrant("redirect_uri does not match the authorization request")


def check_code_verifier(code, form) -> None:
    """RFC 7636 §4.6; and a verifier for a code issued without a challenge is refused
    (RFC 9700 §2.1.1: it would let an attacker's injected code pass as PKCE-protected)."""
    verifier = form.get("code_verifier")
    if code["code_challenge"] is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent for a code issued without code_challenge")
        return
    if verifier is None or not verifier_matches(verifier, code["code_challenge"]):
        raise InvalidGrant("code_verifier does not match the code_challenge")


async def authorization_code_grant(svc: Services, client: Client, request: ApiRequest) -> dict:
    """Checked before it is consumed (node-oidc-provider's order), so a refused attempt — another
    client holding a leaked code, a mistyped verifier — leaves the code to its rightful redemption."""
    form, ip = request.form, request.client_ip
    if not form.get("code"):
        raise InvalidRequest("code is required")

    def check(code) -> None:
        check_code_belongs(code, client, form)
        check_code_verifier(code, form)

    def mint(code, grant, profile):
        return svc.minter.mint(grant, profile, client, nonce=code["nonce"])

    def audit_for(event, outcome, code, grant):
        if event == "tokens_issued":
            return audit.entry(event, client_id=client.client_id, sub=grant.sub, ip=ip,
                               grant_type="authorization_code")
        return audit.entry(event, outcome=outcome, client_id=code["client_id"], ip=ip)

    issued = await operations.redeem_code(svc.db, token_digest(form["code"]), check, mint, audit_for)
    return issued.response()


# -- refresh_token (RFC 6749 §6), rotated on every use ------------------------------------------------

def narrowed_scope(grant: Grant, requested: str | None) -> str:
    """RFC 6749 §6: a refresh may ask for less than was granted, never more. Values op-proxy never
    grants (``offline_access``: refresh tokens come anyway; an API scope) were dropped at /authorize
    (RFC 6749 §3.3) and are dropped again: clients repeat the scope they first asked for."""
    if not requested:
        return grant.scope
    narrowed = [s for s in requested.split() if s in SCOPE_CLAIMS]
    if not narrowed:
        return grant.scope  # nothing op-proxy grants was named: as if the scope were omitted
    if not set(narrowed) <= set(grant.scope.split()):
        raise InvalidScope("a refresh cannot widen the granted scope")
    return " ".join(s for s in grant.scope.split() if s in narrowed)


async def refresh_token_grant(svc: Services, client: Client, request: ApiRequest) -> dict:
    form, ip = request.form, request.client_ip
    if not form.get("refresh_token"):
        raise InvalidRequest("refresh_token is required")

    def needs_upstream(upstream: str | None, has_refresh_token: bool) -> bool:
        # Dex-style: the upstream is asked whether the person is still good there, when it can be.
        return has_refresh_token and is_a(svc.connectors.get(upstream), RefreshingConnector)

    def audit_for(event, outcome, grant):
        if event == "tokens_issued":
            return audit.entry(event, client_id=client.client_id, sub=grant.sub, ip=ip, grant_type="refresh_token")
        return audit.entry(event, outcome=outcome, client_id=client.client_id, ip=ip)

    def rotate(upstream_done: bool):
        return operations.rotate_refresh_token(
            svc.db, token_digest(form["refresh_token"]), client.client_id,
            narrow=lambda grant: narrowed_scope(grant, form.get("scope")), needs_upstream=needs_upstream,
            upstream_done=upstream_done, mint=lambda grant, profile: svc.minter.mint(grant, profile, client),
            audit_for=audit_for)

    result = await rotate(upstream_done=False)
    if isinstance(result, operations.UpstreamRefreshNeeded):
        grant = result.grant
        try:
            await refresh_at_upstream(svc, grant)
        except InvalidGrant:
            await operations.revoke_grant(svc.db, grant.id, "upstream_refused_refresh", audit.entry(
                "upstream_refresh", outcome="failure", client_id=client.client_id, sub=grant.sub, ip=ip))
            raise
        result = await rotate(upstream_done=True)
    return result.response()


GRANT_HANDLERS = {
    "authorization_code": authorization_code_grant,
    "refresh_token": refresh_token_grant,
}

ENDPOINT = Endpoint("/token", token, frozenset({"POST"}), cors=True).routed(blueprint)
