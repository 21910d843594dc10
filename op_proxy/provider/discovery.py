"""Discovery (OIDC Discovery 1.0 §3) and the JWKS. Discovery advertises exactly what works.

Both are public documents prepared once as bytes with an ETag. Every relying party and resource
server fetches them, so they are answered by ``PublicDocuments`` in front of the Quart application
(no routing, hooks or response object per request); the blueprint's routes below answer the same
documents for anything the fast path passes on (a ``lang=`` query, another method).
"""

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
from op_proxy.logs import current_frame
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


def public_document(body: bytes, headers: dict) -> Response:
    if headers["ETag"] in request.headers.get("If-None-Match", ""):
        return Response(b"", 304, headers)  # RFC 9110 §15.4.5: the same validators as a 200
    return Response(body, 200, headers)


def discovery_document(svc) -> tuple[bytes, dict]:
    return prepared(provider_metadata_bytes(svc.settings.issuer), "public, max-age=300")


def jwks_document(svc) -> tuple[bytes, dict]:
    # Cached no longer than a new key is published before it signs (keys.publish_ahead).
    return prepared(svc.keyring.jwks_bytes(), f"public, max-age={svc.settings.keys.jwks_max_age}")


# path → the route's template in metrics, and how its document is prepared
DOCUMENTS = {"/.well-known/openid-configuration": discovery_document, "/jwks": jwks_document}


@blueprint.route("/.well-known/openid-configuration")
async def openid_configuration():
    return public_document(*discovery_document(services()))


@blueprint.route("/jwks")
async def jwks():
    return public_document(*jwks_document(services()))


class PublicDocuments:
    """ASGI: GET and HEAD of discovery and the JWKS answered from their prepared bytes (the request
    id, security headers and metrics are ``logs.EveryRequest``'s, in front of this). Anything else
    goes on to the application."""

    def __init__(self, app, svc):
        self.app, self.svc = app, svc
        self._encoded: dict[int, tuple] = {}  # id of a prepared header dict → (it, its raw header list)

    async def __call__(self, scope, receive, send):
        prepare = DOCUMENTS.get(scope.get("path")) if scope["type"] == "http" else None
        if (prepare is None or scope["method"] not in ("GET", "HEAD") or b"lang=" in scope["query_string"]
                or scope.get("root_path")):
            return await self.app(scope, receive, send)
        if (frame := current_frame()) is not None:
            frame.route = scope["path"]
        body, headers = prepare(self.svc)
        if_none_match = next((value for name, value in scope["headers"] if name == b"if-none-match"), b"")
        status = 304 if headers["ETag"].encode("latin-1") in if_none_match else 200
        raw = self._raw(headers)
        if status == 200:
            raw = [*raw, (b"content-length", str(len(body)).encode("latin-1"))]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body if status == 200 and scope["method"] == "GET" else b""})

    def _raw(self, headers: dict) -> list:
        # prepared() returns the same dict for the same document: encode its headers once.
        raw = self._encoded.get(id(headers))
        if raw is None or raw[0] is not headers:
            raw = (headers, [(name.lower().encode("latin-1"), value.encode("latin-1"))
                             for name, value in headers.items()])
            if len(self._encoded) > 16:
                self._encoded.clear()
            self._encoded[id(headers)] = raw
        return raw[1]
