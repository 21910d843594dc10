"""The UserInfo endpoint (OIDC Core §5.3): GET or POST, token in the header or the form body
(RFC 6750 §2.1, §2.2); errors as RFC 6750 §3 WWW-Authenticate challenges."""

from __future__ import annotations

from quart import Blueprint

from op_proxy.claims.release import release
from op_proxy.errors import InsufficientScope, InvalidRequest, InvalidToken
from op_proxy.provider.api import FORM, ApiRequest, Endpoint
from op_proxy.provider.responses import allow_registered_origins
from op_proxy.services import Services
from op_proxy.storage import operations
from op_proxy.tokens.minting import app_user_claims
from op_proxy.tokens.validation import active_access_token

blueprint = Blueprint("userinfo", __name__)
blueprint.after_request(allow_registered_origins)  # single-page applications read the profile here


def bearer_token(request: ApiRequest) -> str | None:
    header = request.authorization or ""
    from_header = header[7:].strip() if header[:7].lower() == "bearer " else None
    from_body = None
    if request.method == "POST" and request.mimetype == FORM:
        from_body = request.form.get("access_token")
    if from_header and from_body:
        return ""  # RFC 6750 §2: more than one method is an invalid request
    return from_header or from_body


async def userinfo(svc: Services, request: ApiRequest) -> dict:
    token = bearer_token(request)
    if token is None:
        raise InvalidRequest("an access token is required", status=401).bearer_challenge(naming_the_error=False)
    if token == "":
        raise InvalidRequest("send the access token in one place only").bearer_challenge()
    active = await active_access_token(svc, token, with_profile=True)
    if active is None:
        raise InvalidToken("the access token is invalid, expired or revoked").bearer_challenge()
    claims, grant, profile = active
    if not isinstance(claims.get("scope"), str) or "openid" not in claims["scope"].split():
        raise InsufficientScope("the openid scope is required").bearer_challenge()
    client = await operations.get_client(svc.db, grant.client_id, enabled_only=False)
    requested = (grant.claims or {}).get("userinfo") or {}
    return {"sub": grant.client_sub, **release(profile or {}, claims["scope"].split(), requested,
                                              client.allowed_scopes if client else ()), **app_user_claims(grant)}


ENDPOINT = Endpoint("/userinfo", userinfo, frozenset({"GET", "POST"}), cors=True).routed(blueprint)
