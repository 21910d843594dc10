"""Token introspection (RFC 7662) and revocation (RFC 7009), for authenticated clients.

A client learns about its own tokens only: for anyone else's, introspection answers
``{"active": false}`` and revocation does nothing (RFC 7009 §2.1), so tokens cannot be probed.
"""

from __future__ import annotations

from quart import Blueprint, request

from op_proxy import audit
from op_proxy.clients.authentication import authenticate_client
from op_proxy.errors import InvalidRequest
from op_proxy.provider.api import ApiRequest, Endpoint
from op_proxy.provider.responses import allow_registered_origins
from op_proxy.provider.token import client_audiences
from op_proxy.security import token_digest
from op_proxy.services import Services
from op_proxy.storage import operations
from op_proxy.tokens.validation import active_access_token, active_refresh_token

blueprint = Blueprint("introspection", __name__)


@blueprint.after_request
async def cors_for_revocation_only(response):
    """A single-page application revokes its tokens at sign-out; introspection is for confidential
    clients (resource servers, back ends), so browsers are not let in there."""
    if request.endpoint == "introspection.revoke":
        return await allow_registered_origins(response)
    return response


async def authenticated_client(svc: Services, request: ApiRequest):
    client = await authenticate_client(svc.db, request.form, request.authorization, client_audiences(svc))
    if not request.form.get("token"):
        raise InvalidRequest("token is required")
    return client


async def describe(svc, token: str, hint: str | None) -> dict | None:
    """What we know of a token, trying the hinted type first (RFC 7662 §2.1)."""
    lookups = [describe_access_token, describe_refresh_token]
    if hint == "refresh_token":
        lookups.reverse()
    for lookup in lookups:
        found = await lookup(svc, token)
        if found:
            return found
    return None


async def describe_access_token(svc, token: str) -> dict | None:
    active = await active_access_token(svc, token)
    if active is None:
        return None
    claims, grant, _profile = active
    return {"active": True, "token_type": "Bearer", "scope": claims["scope"], "client_id": grant.client_id,
            "sub": grant.client_sub, "aud": claims["aud"], "iss": claims["iss"], "exp": claims["exp"],
            "iat": claims["iat"], **({"jti": claims["jti"]} if "jti" in claims else {}),
            "_jti": claims.get("jti") or token_digest(token), "_grant_id": grant.id, "_kind": "access_token"}


async def describe_refresh_token(svc, token: str) -> dict | None:
    active = await active_refresh_token(svc, token)
    if active is None:
        return None
    row, grant = active
    # No token_type: that names how an access token is used (RFC 7662 §2.2, RFC 6749 §7.1).
    return {"active": True, "scope": grant.scope, "client_id": grant.client_id,
            "sub": grant.client_sub, "iss": svc.settings.issuer, "exp": row["expires_at"], "iat": row["created_at"],
            "_grant_id": grant.id, "_kind": "refresh_token"}


async def introspect(svc: Services, request: ApiRequest) -> dict:
    client = await authenticated_client(svc, request)
    found = await describe(svc, request.form["token"], request.form.get("token_type_hint"))
    if found is None or found["client_id"] != client.client_id:
        return {"active": False}
    return {k: v for k, v in found.items() if not k.startswith("_")}


async def revoke(svc: Services, request: ApiRequest) -> dict:
    client = await authenticated_client(svc, request)
    found = await describe(svc, request.form["token"], request.form.get("token_type_hint"))
    if found is not None and found["client_id"] == client.client_id:
        entry = audit.entry("token_revoked", client_id=client.client_id, sub=found["sub"], ip=request.client_ip,
                            token_type=found["_kind"])
        if found["_kind"] == "refresh_token":
            # RFC 7009 §2.1: revoking a refresh token also ends the access tokens of its grant.
            await operations.revoke_grant(svc.db, found["_grant_id"], "revoked_by_client", entry)
        else:
            await operations.revoke_access_token(svc.db, found["_jti"], entry)
    return {}


INTROSPECTION = Endpoint("/introspect", introspect, frozenset({"POST"}), cors=False).routed(blueprint)
REVOCATION = Endpoint("/revoke", revoke, frozenset({"POST"}), cors=True).routed(blueprint)
