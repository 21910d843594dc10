"""Discovery (OIDC Discovery 1.0 §3) and the JWKS. Discovery advertises exactly what works."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import orjson
from oic.oic.message import ProviderConfigurationResponse
from quart import Blueprint, Response, request

from op_proxy.claims.release import SUPPORTED_CLAIMS, SUPPORTED_SCOPES
from op_proxy.clients.authentication import ASSERTION_ALGORITHMS
from op_proxy.clients.validation import AUTH_METHODS
from op_proxy.i18n import SUPPORTED_LOCALES
from op_proxy.services import services

blueprint = Blueprint("discovery", __name__)


@lru_cache(maxsize=4)
def provider_metadata(issuer: str) -> dict:
    metadata = ProviderConfigurationResponse(
        issuer=issuer,
        authorization_endpoint=issuer + "/authorize",
        token_endpoint=issuer + "/token",
        userinfo_endpoint=issuer + "/userinfo",
        jwks_uri=issuer + "/jwks",
        end_session_endpoint=issuer + "/logout",
        introspection_endpoint=issuer + "/introspect",
        revocation_endpoint=issuer + "/revoke",
        scopes_supported=list(SUPPORTED_SCOPES),
        response_types_supported=["code"],
        response_modes_supported=["query", "form_post"],
        grant_types_supported=["authorization_code", "refresh_token"],
        subject_types_supported=["public", "pairwise"],
        id_token_signing_alg_values_supported=["RS256"],
        token_endpoint_auth_methods_supported=list(AUTH_METHODS),
        token_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGORITHMS,
        # RFC 8414 §2: with private_key_jwt among the methods, its algorithms must be listed too.
        introspection_endpoint_auth_methods_supported=list(AUTH_METHODS),
        introspection_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGORITHMS,
        revocation_endpoint_auth_methods_supported=list(AUTH_METHODS),
        revocation_endpoint_auth_signing_alg_values_supported=ASSERTION_ALGORITHMS,
        code_challenge_methods_supported=["S256"],
        claims_supported=list(dict.fromkeys(["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr",
                                             "azp", "sid", "at_hash", *SUPPORTED_CLAIMS])),
        claim_types_supported=["normal"],
        claims_parameter_supported=True,
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
        require_request_uri_registration=False,
        authorization_response_iss_parameter_supported=True,
        prompt_values_supported=["none", "login", "consent"],
        ui_locales_supported=list(SUPPORTED_LOCALES),
        frontchannel_logout_supported=False,
        backchannel_logout_supported=False,
    )
    if issuer.startswith("https://"):
        # pyoidc checks the required members and their types; it refuses the plain-http loopback
        # issuer of development, which the config only allows on 127.0.0.1/localhost.
        metadata.verify()
    document = metadata.to_dict()
    document.pop("version", None)  # pyoidc's default, not an OIDC Discovery member
    return document


@lru_cache(maxsize=4)
def provider_metadata_bytes(issuer: str) -> bytes:
    return orjson.dumps(provider_metadata(issuer))


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@lru_cache(maxsize=8)
def prepared(body: bytes, cache_control: str) -> tuple[bytes, dict]:
    """A public JSON document, serialized once, with an ETag for conditional requests (RFC 9110 §8.8.3)."""
    return body, {"Content-Type": "application/json", "Cache-Control": cache_control,
                  "Access-Control-Allow-Origin": "*", "ETag": entity_tag(body)}


def public_document(body: bytes, cache_control: str) -> Response:
    body, headers = prepared(body, cache_control)
    if headers["ETag"] in request.headers.get("If-None-Match", ""):
        return Response(b"", 304, headers)  # RFC 9110 §15.4.5: the same validators as a 200
    return Response(body, 200, headers)


@blueprint.route("/.well-known/openid-configuration")
async def openid_configuration():
    return public_document(provider_metadata_bytes(services().settings.issuer), "public, max-age=300")


@blueprint.route("/jwks")
async def jwks():
    svc = services()
    # Cached no longer than a new key is published before it signs (keys.publish_ahead).
    return public_document(svc.keyring.jwks_bytes(), f"public, max-age={svc.settings.keys.jwks_max_age}")
