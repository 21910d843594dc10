"""The authorization endpoint (OIDC Core §3.1.2), as an ordered pipeline of small checks.

Until the client and its redirect URI are known to be genuine, every error is a page of ours:
we never redirect to a URI we have not verified (RFC 6749 §4.1.2.1, RFC 9700 §4.1).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

from quart import Blueprint, request

from op_proxy.claims.release import grantable_scopes
from op_proxy.claims.subjects import subject_for
from op_proxy.clients.registry import find_client
from op_proxy.errors import (
    InvalidRequest,
    InvalidScope,
    LoginRequired,
    PageError,
    Refusal,
    RequestNotSupported,
    RequestUriNotSupported,
    UnsupportedResponseType,
)
from op_proxy.i18n import gettext as _
from op_proxy.keys.keyring import InvalidToken
from op_proxy.provider.finish import expected_subjects
from op_proxy.provider.pkce import is_valid_pkce_value
from op_proxy.services import Services, services
from op_proxy.signin import flow
from op_proxy.signin.pending import OidcRequest
from op_proxy.storage.models import Client
from op_proxy.tokens.validation import id_token_hint_claims

blueprint = Blueprint("authorize", __name__)

PROMPTS = {"none", "login", "consent"}
RESPONSE_MODES = {"query", "form_post"}


@dataclass
class AuthorizationRequest:
    args: dict
    repeated: set[str] = field(default_factory=set)
    client: Client | None = None
    redirect_uri: str | None = None
    response_mode: str = "query"
    state: str | None = None
    scopes: list[str] = field(default_factory=list)
    prompt: set[str] = field(default_factory=set)
    max_age: int | None = None
    claims: dict | None = None
    hinted_sub: str | None = None

    def sign_in(self) -> OidcRequest:
        """What the rest of the flow needs, kept with the pending sign-in."""
        a = self.args
        return OidcRequest(
            client_id=self.client.client_id, redirect_uri=self.redirect_uri,
            response_mode=self.response_mode, state=self.state, scope=self.scopes,
            nonce=a.get("nonce"), code_challenge=a.get("code_challenge"),
            code_challenge_method=a.get("code_challenge_method") if a.get("code_challenge") else None,
            prompt=sorted(self.prompt), max_age=self.max_age, claims=self.claims,
            login_hint=a.get("login_hint"), ui_locales=a.get("ui_locales"),
            idp_hint=a.get("idp_hint") or a.get("kc_idp_hint"), hinted_sub=self.hinted_sub,
        )


# -- checks before the redirect URI is trusted: failures are pages ---------------------------------

async def check_client(svc: Services, req: AuthorizationRequest) -> None:
    if {"client_id", "redirect_uri"} & req.repeated:
        raise PageError(_("Invalid sign-in request"),
                        _("The application sent a malformed sign-in request. Contact its administrator."),
                        400, detail="repeated_parameter")
    req.client = await find_client(svc.db, req.args.get("client_id"))
    if req.client is not None and req.client.mode != "oidc":
        raise PageError(_("Unknown application"),
                        _("This application signs in through the old gateway's addresses (/public/login.php), "
                          "not OpenID Connect. Contact its administrator."), 400, detail="legacy_client")
    if req.client is None:
        raise PageError(_("Unknown application"),
                        _("The application that sent you here is not registered. Contact its "
                          "administrator."), 400, detail="invalid_client")


async def check_redirect_uri(svc: Services, req: AuthorizationRequest) -> None:
    """Exact string comparison (RFC 9700 §4.1.3): no prefix, case or port leniency."""
    uri = req.args.get("redirect_uri")
    if uri is None or uri not in req.client.redirect_uris:
        raise PageError(_("Invalid return address"),
                        _("The application asked to return you to an address it has not registered. "
                          "Contact its administrator."), 400, detail="invalid_redirect_uri")
    req.redirect_uri = uri


async def check_response_mode(svc: Services, req: AuthorizationRequest) -> None:
    mode = req.args.get("response_mode", "query")
    if mode not in RESPONSE_MODES:
        raise InvalidRequest("response_mode must be query or form_post")
    req.response_mode = mode


# -- checks whose failures go back to the client ----------------------------------------------------

async def check_no_repeated_parameters(svc: Services, req: AuthorizationRequest) -> None:
    """RFC 6749 §3.1: request parameters must not be included more than once."""
    if req.repeated:
        raise InvalidRequest(f"parameter {sorted(req.repeated)[0]} is repeated")


async def check_no_request_objects(svc: Services, req: AuthorizationRequest) -> None:
    if "request" in req.args:
        raise RequestNotSupported("request objects are not supported")
    if "request_uri" in req.args:
        raise RequestUriNotSupported("request_uri is not supported")


async def check_response_type(svc: Services, req: AuthorizationRequest) -> None:
    if "response_type" not in req.args:
        raise InvalidRequest("response_type is required")
    if req.args["response_type"] != "code":
        raise UnsupportedResponseType("only the authorization code flow is supported")


async def check_scope(svc: Services, req: AuthorizationRequest) -> None:
    requested = req.args.get("scope", "").split()
    if "openid" not in requested:
        raise InvalidScope("the openid scope is required")
    req.scopes = grantable_scopes(requested, req.client.allowed_scopes)


async def check_pkce(svc: Services, req: AuthorizationRequest) -> None:
    """RFC 7636 with RFC 9700 §2.1.1: S256 only, and required for public clients."""
    challenge = req.args.get("code_challenge")
    method = req.args.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise InvalidRequest("code_challenge_method without code_challenge")
        if req.client.is_public or req.client.require_pkce:
            raise InvalidRequest("this client must use PKCE (code_challenge, S256)")
        return
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not is_valid_pkce_value(challenge):
        raise InvalidRequest("code_challenge is malformed")


async def check_prompt(svc: Services, req: AuthorizationRequest) -> None:
    prompt = set(req.args.get("prompt", "").split())
    unknown = prompt - PROMPTS
    if unknown:
        raise InvalidRequest(f"unsupported prompt value {sorted(unknown)[0]}")
    if "none" in prompt and len(prompt) > 1:
        raise InvalidRequest("prompt=none cannot be combined with other values")
    req.prompt = prompt


async def check_max_age(svc: Services, req: AuthorizationRequest) -> None:
    raw = req.args.get("max_age")
    if raw is None:
        return
    if not re.fullmatch(r"[0-9]+", raw):  # ASCII digits only: str.isdigit() also takes "²" and "١٠"
        raise InvalidRequest("max_age must be a non-negative integer")
    req.max_age = int(raw)


async def check_claims_parameter(svc: Services, req: AuthorizationRequest) -> None:
    """OIDC Core §5.5: a JSON object with optional ``userinfo`` and ``id_token`` members."""
    raw = req.args.get("claims")
    if raw is None:
        return
    if len(raw) > MAX_CLAIMS_LENGTH:
        raise InvalidRequest(f"claims is longer than {MAX_CLAIMS_LENGTH} characters")
    try:
        claims = json.loads(raw, parse_constant=_refuse_non_json_number)
    except (ValueError, RecursionError):
        raise InvalidRequest("claims is not valid JSON") from None
    if nesting_depth(claims) > MAX_CLAIMS_DEPTH:
        raise InvalidRequest(f"claims is nested deeper than {MAX_CLAIMS_DEPTH} levels")
    if not isinstance(claims, dict) or not all(
            k in ("userinfo", "id_token") and isinstance(v, dict) for k, v in claims.items()):
        raise InvalidRequest("claims must hold userinfo and/or id_token objects")
    req.claims = claims


# {"userinfo": {"name": {"essential": true, "values": [...]}}} is four levels; room for object values.
MAX_CLAIMS_DEPTH = 8
MAX_CLAIMS_LENGTH = 8192


def _refuse_non_json_number(constant: str):
    """RFC 8259 §6: NaN and Infinity are not JSON (Python's parser accepts them; databases do not)."""
    raise ValueError(f"{constant} is not a JSON number")


def nesting_depth(value) -> int:
    """How deeply objects and arrays nest in ``value``, counted without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


async def check_id_token_hint(svc: Services, req: AuthorizationRequest) -> None:
    """OIDC Core §3.1.2.1: a previously issued ID token (expired is fine) naming the expected person."""
    hint = req.args.get("id_token_hint")
    if hint is None:
        return
    try:
        claims = id_token_hint_claims(svc, hint)
    except InvalidToken:
        raise InvalidRequest("id_token_hint is not an ID token we issued") from None
    if req.client.client_id not in _audiences(claims):
        raise InvalidRequest("id_token_hint was not issued to this client")
    req.hinted_sub = claims.get("sub")


def _audiences(claims: dict) -> list[str]:
    aud = claims.get("aud")
    return [aud] if isinstance(aud, str) else list(aud or [])


TRUST_CHECKS = (check_client, check_redirect_uri)
# From here on the redirect URI is trusted; until check_response_mode passes, errors use "query".
REQUEST_CHECKS = (check_response_mode, check_no_repeated_parameters, check_no_request_objects, check_response_type,
                  check_scope, check_pkce, check_prompt, check_max_age, check_claims_parameter, check_id_token_hint)


# -- the endpoint ------------------------------------------------------------------------------------

@blueprint.route("/authorize", methods=["GET", "POST"])
async def authorize():
    svc = services()
    source = await request.form if request.method == "POST" else request.args
    args = source.to_dict()
    req = AuthorizationRequest(args, repeated={key for key in args if len(source.getlist(key)) > 1})
    for check in TRUST_CHECKS:
        await check(svc, req)  # PageError is rendered by the app's error handler
    req.state = args.get("state")
    try:
        for check in REQUEST_CHECKS:
            await check(svc, req)
    except Refusal as exc:
        if isinstance(exc, PageError) or exc.redirect is not None:
            raise
        exc.to_client(req.redirect_uri, req.response_mode, req.state)
        raise  # the app's error handler redirects it to the client
    return await start_or_continue_sign_in(svc, req)


async def start_or_continue_sign_in(svc: Services, req: AuthorizationRequest):
    signed_in = await flow.current_sign_in(svc)
    if signed_in is not None and session_satisfies(svc, signed_in.session, req):
        return await flow.start(svc, req.sign_in(), signed_in=signed_in)
    if "none" in req.prompt:
        raise LoginRequired("the person is not signed in").to_client(req.redirect_uri, req.response_mode, req.state)
    return await flow.start(svc, req.sign_in())


def session_satisfies(svc: Services, sso, req: AuthorizationRequest) -> bool:
    """Can the existing SSO session answer this request without a new login?"""
    if "login" in req.prompt:
        return False
    if req.client.allowed_upstreams and sso.upstream not in req.client.allowed_upstreams:
        return False  # signed in, but through an upstream this client does not accept
    if req.max_age is not None and sso.auth_time + req.max_age < time.time():
        return False
    subject = subject_for(sso.sub, req.client, svc.keyring.subject_salt())
    if any(expected != subject for expected in expected_subjects(req.hinted_sub, req.claims)):
        return False  # someone else is signed in here: let the person the application expects sign in
    return True
