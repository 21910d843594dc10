"""Token introspection (RFC 7662) and revocation (RFC 7009), for authenticated clients.

A client learns about its own tokens only: for anyone else's, introspection answers
``{"active": false}`` and revocation does nothing (RFC 7009 §2.1), so tokens cannot be probed.
"""

from __future__ import annotations

from quart import Blueprint, request

from op_proxy import audit
from op_proxy.clients.authentication import authenticate_client
from op_proxy.errors import InvalidRequest
from op_proxy.provider.responses import allow_registered_origins, oauth_json
from op_proxy.provider.token import client_audiences
from op_proxy.security import token_digest
from op_proxy.services import services
from op_proxy.storage import operations
from op_proxy.tokens.validation import active_access_token, active_refresh_token
from op_proxy.web import client_ip

blueprint = Blueprint("introspection", __name__)


@blueprint.after_request
async def cors_for_revocation_only(response):
    """A single-page application revokes its tokens at sign-out; introspection is for confidential
    clients (resource servers, back ends), so browsers are not let in there."""
    if request.endpoint == "introspection.revoke":
        return await allow_registered_origins(response)
    return response


async def authenticated_request():
    svc = services()
    form = await request.form
    client = await authenticate_client(svc.db, form, request.headers.get("Authorization"), client_audiences(svc))
    if not form.get("token"):
        raise InvalidRequest("token is required")
    return svc, client, form


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


@blueprint.route("/introspect", methods=["POST"])
async def introspect():
    svc, client, form = await authenticated_request()
    found = await describe(svc, form["token"], form.get("token_type_hint"))
    if found is None or found["client_id"] != client.client_id:
        return oauth_json({"active": False})
    return oauth_json({k: v for k, v in found.items() if not k.startswith("_")})


@blueprint.route("/revoke", methods=["POST"])
async def revoke():
    svc, client, form = await authenticated_request()
    found = await describe(svc, form["token"], form.get("token_type_hint"))
    if found is not None and found["client_id"] == client.client_id:
        entry = audit.entry("token_revoked", client_id=client.client_id, sub=found["sub"], ip=client_ip(),
                            token_type=found["_kind"])
        if found["_kind"] == "refresh_token":
            # RFC 7009 §2.1: revoking a refresh token also ends the access tokens of its grant.
            await operations.revoke_grant(svc.db, found["_grant_id"], "revoked_by_client", entry)
        else:
            await operations.revoke_access_token(svc.db, found["_jti"], entry)
    return oauth_json({})
