"""The token endpoint (RFC 6749 §3.2, OIDC Core §3.1.3): one handler per grant type, each a short
list of named steps: authenticate the client, consume the grant, mint the tokens."""

from __future__ import annotations

import time

from quart import Blueprint, jsonify, request
from sqlalchemy import update

from op_proxy import audit
from op_proxy.clients.authentication import authenticate_client
from op_proxy.errors import InvalidGrant, OAuthError
from op_proxy.provider.pkce import verifier_matches
from op_proxy.provider.responses import allow_registered_origins
from op_proxy.security import token_digest
from op_proxy.services import Services, services
from op_proxy.signin.sessions import account_by_sub
from op_proxy.signin.upstream_session import refresh_at_upstream
from op_proxy.storage.models import AccessToken, AuthorizationCode, Client, Grant, RefreshToken
from op_proxy.web import NO_STORE, client_ip

blueprint = Blueprint("token", __name__)
blueprint.after_request(allow_registered_origins)  # single-page applications redeem their codes here


def oauth_json(body: dict, status: int = 200, headers: dict | None = None):
    response = jsonify(body)
    response.status_code = status
    response.headers.update({**NO_STORE, **(headers or {})})
    return response


def client_audiences(svc: Services) -> set[str]:
    """Where a private_key_jwt assertion may be addressed (OIDC Core §9: the token endpoint)."""
    return {svc.settings.issuer, svc.endpoint("/token")}


@blueprint.route("/token", methods=["POST"])
async def token():
    svc = services()
    form = await request.form
    try:
        refuse_repeated_parameters(form)
        client = await authenticate_client(svc.db, form, request.headers.get("Authorization"),
                                           client_audiences(svc))
        grant_type = form.get("grant_type")
        handler = GRANT_HANDLERS.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type" if grant_type else "invalid_request",
                             f"grant_type {grant_type!r} is not supported" if grant_type else "grant_type is required")
        body = await handler(svc, client, form)
    except OAuthError as exc:
        return oauth_json(exc.body(), exc.status, exc.headers)
    return oauth_json(body)


def refuse_repeated_parameters(form) -> None:
    """RFC 6749 §3.2: parameters must not be repeated; taking the first of two grant_types (or
    codes) would act on a request the client did not unambiguously make."""
    repeated = sorted(name for name in form if len(form.getlist(name)) > 1)
    if repeated:
        raise OAuthError("invalid_request", f"parameter {repeated[0]} is repeated")


async def revoke_grant(svc: Services, grant_id: str, reason: str) -> None:
    """Revoking a grant revokes every access and refresh token issued under it."""
    now = int(time.time())
    async with svc.db.transaction() as session:
        await session.execute(update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None))
                              .values(revoked_at=now, revoked_reason=reason))
        await session.execute(update(AccessToken).where(AccessToken.grant_id == grant_id,
                                                        AccessToken.revoked_at.is_(None)).values(revoked_at=now))
        await session.execute(update(RefreshToken).where(RefreshToken.grant_id == grant_id,
                                                         RefreshToken.revoked_at.is_(None)).values(revoked_at=now))


async def live_grant(svc: Services, grant_id: str) -> Grant:
    async with svc.db.session() as session:
        grant = await session.get(Grant, grant_id)
    if grant is None or grant.revoked_at is not None:
        raise InvalidGrant("the grant has been revoked")
    return grant


# -- authorization_code (RFC 6749 §4.1.3) ------------------------------------------------------------

async def consume_code(svc: Services, code: str) -> AuthorizationCode:
    """Single use, atomically (RFC 6749 §4.1.2): of two requests racing, exactly one wins.
    A second use means the code leaked, so everything issued from it is revoked (RFC 9700 §4.2.4)."""
    digest = token_digest(code)
    async with svc.db.transaction() as session:
        row = await session.get(AuthorizationCode, digest)
        if row is None:
            raise InvalidGrant("unknown authorization code")
        result = await session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.code_digest == digest, AuthorizationCode.consumed_at.is_(None))
            .values(consumed_at=int(time.time())))
    if result.rowcount != 1:
        await revoke_grant(svc, row.grant_id, "code_replayed")
        await audit.record(svc.db, "authorization_code_replayed", outcome="failure",
                           client_id=row.client_id, ip=client_ip())
        raise InvalidGrant("the authorization code has already been used")
    return row


def check_code_belongs(code: AuthorizationCode, client: Client, form) -> None:
    if code.client_id != client.client_id:
        raise InvalidGrant("the authorization code was issued to another client")
    if code.expires_at <= time.time():
        raise InvalidGrant("the authorization code has expired")
    # RFC 6749 §4.1.3: the same redirect_uri as in the authorization request, exactly.
    if form.get("redirect_uri") != code.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")


def check_code_verifier(code: AuthorizationCode, form) -> None:
    """RFC 7636 §4.6; and a verifier for a code issued without a challenge is refused
    (RFC 9700 §2.1.1: it would let an attacker's injected code pass as PKCE-protected)."""
    verifier = form.get("code_verifier")
    if code.code_challenge is None:
        if verifier is not None:
            raise InvalidGrant("code_verifier sent for a code issued without code_challenge")
        return
    if verifier is None or not verifier_matches(verifier, code.code_challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")


async def authorization_code_grant(svc: Services, client: Client, form) -> dict:
    if not form.get("code"):
        raise OAuthError("invalid_request", "code is required")
    code = await consume_code(svc, form["code"])
    check_code_belongs(code, client, form)
    check_code_verifier(code, form)
    grant = await live_grant(svc, code.grant_id)
    account = await account_by_sub(svc.db, grant.sub)
    async with svc.db.transaction() as session:
        issued = svc.minter.issue(session, grant, account.profile, client, nonce=code.nonce)
    await audit.record(svc.db, "tokens_issued", client_id=client.client_id, sub=grant.sub, ip=client_ip(),
                       grant_type="authorization_code")
    return issued.response()


# -- refresh_token (RFC 6749 §6), rotated on every use ------------------------------------------------

async def find_refresh_token(svc: Services, client: Client, token: str) -> tuple[RefreshToken, Grant]:
    async with svc.db.session() as session:
        row = await session.get(RefreshToken, token_digest(token))
        grant = await session.get(Grant, row.grant_id) if row else None
    if row is None or grant is None or row.client_id != client.client_id:
        raise InvalidGrant("unknown refresh token")
    return row, grant


def narrowed_scope(grant: Grant, requested: str | None) -> str:
    """RFC 6749 §6: a refresh may ask for less than was granted, never more."""
    if not requested:
        return grant.scope
    narrowed = requested.split()
    if not set(narrowed) <= set(grant.scope.split()):
        raise OAuthError("invalid_scope", "a refresh cannot widen the granted scope")
    return " ".join(s for s in grant.scope.split() if s in narrowed)


async def rotate_refresh_token(svc: Services, client: Client, row: RefreshToken) -> None:
    """A refresh token works once; using a rotated one again revokes the whole family (RFC 9700 §4.14.2)."""
    async with svc.db.transaction() as session:
        result = await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_digest == row.token_digest, RefreshToken.rotated_at.is_(None),
                   RefreshToken.revoked_at.is_(None))
            .values(rotated_at=int(time.time())))
    if result.rowcount != 1:
        if row.revoked_at is None:
            await revoke_grant(svc, row.grant_id, "refresh_token_reused")
            await audit.record(svc.db, "refresh_token_reused", outcome="failure", client_id=client.client_id,
                               ip=client_ip())
        raise InvalidGrant("the refresh token has already been used or revoked")
    if row.expires_at <= time.time():
        raise InvalidGrant("the refresh token has expired")


async def refresh_token_grant(svc: Services, client: Client, form) -> dict:
    if not form.get("refresh_token"):
        raise OAuthError("invalid_request", "refresh_token is required")
    row, grant = await find_refresh_token(svc, client, form["refresh_token"])
    scope = narrowed_scope(grant, form.get("scope"))  # a refused request leaves the token usable
    if row.rotated_at is None and row.revoked_at is None and grant.revoked_at is None:
        try:
            await refresh_at_upstream(svc, grant)
        except InvalidGrant:
            await revoke_grant(svc, grant.id, "upstream_refused_refresh")
            await audit.record(svc.db, "upstream_refresh", outcome="failure", client_id=client.client_id,
                               sub=grant.sub, ip=client_ip())
            raise
    await rotate_refresh_token(svc, client, row)
    grant = await live_grant(svc, row.grant_id)
    grant.scope = scope  # for the tokens minted now; the grant itself keeps its full scope
    account = await account_by_sub(svc.db, grant.sub)
    async with svc.db.transaction() as session:
        issued = svc.minter.issue(session, grant, account.profile, client)
    await audit.record(svc.db, "tokens_issued", client_id=client.client_id, sub=grant.sub, ip=client_ip(),
                       grant_type="refresh_token")
    return issued.response()


GRANT_HANDLERS = {
    "authorization_code": authorization_code_grant,
    "refresh_token": refresh_token_grant,
}
