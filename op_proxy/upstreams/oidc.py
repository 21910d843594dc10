"""``oidc``: any OpenID Provider, driven by its discovery document (Google, PSU SSO, Microsoft,
Auth0, Okta). What differs between providers is configuration, never code (UPSTREAMS.md item 10).

The upstream leg follows RFC 9700 for a client: state (the sign-in flow's), nonce and PKCE S256
(this connector's, kept by the flow as ``ConnectorData`` until the callback); the ID token is
verified even though it came from the token endpoint over TLS (signature with the upstream's JWKS
or, for HS*, the client secret; ``iss``, ``aud``, ``azp``, ``exp``, ``nonce``); an ``iss`` response
parameter is checked where sent (RFC 9207); a userinfo ``sub`` must be the ID token's; and where
``introspect_at_sign_in`` is set, the upstream must still call the access token active and name the
same ``sub`` (RFC 7662; ThaID's introspection endpoint is not in its discovery, hence a setting).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from dataclasses import replace
from urllib.parse import urlencode

import httpx
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from op_proxy.config import OidcUpstreamSettings, UpstreamSettings
from op_proxy.security import base64url_sha256, random_token
from op_proxy.upstreams.base import (
    CallbackConnector,
    ConnectorData,
    Identity,
    LoggingOutConnector,
    LoginFailed,
    LoginHints,
    RefreshingConnector,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)

log = logging.getLogger("op_proxy.upstreams")

METADATA_TTL = 3600
JWKS_TTL = 3600
JWKS_REFETCH_INTERVAL = 60  # at most one refetch a minute for an unknown kid (UPSTREAMS.md item 6)
CLOCK_SKEW = 60
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC"}

# What an upstream may send. Far above any real provider's answers (ThaID's and Google's ID tokens are
# a few KB), and low enough that a broken or hostile upstream can neither fill op-proxy's memory and
# database nor pass megabytes on to every app. Beyond them the sign-in is refused, and nothing stored.
MAX_ANSWER_BYTES = 64 * 1024  # any one answer: token, userinfo, introspection, discovery, JWKS
MAX_ID_TOKEN_CHARS = 16 * 1024  # the upstream ID token kept with the session (id_token_hint at sign-out)
MAX_CLAIM_CHARS = 2048  # one claim, as JSON (an address object, a long name)
MAX_GROUPS = 256
MAX_GROUP_CHARS = 256
MAX_SUBJECT_CHARS = 255  # the account key, (upstream, subject)


def upstream_auth_time(claims: dict) -> int | None:
    value = claims.get("auth_time")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_sizes(claims: dict) -> None:
    """Every claim kept or passed on within bounds (the names only reach the log, never the values)."""
    for name, value in claims.items():
        if name == "groups" and isinstance(value, list):
            if len(value) > MAX_GROUPS:
                raise UpstreamRefused(f"{len(value)} groups (at most {MAX_GROUPS})")
            if any(not isinstance(g, str) or len(g) > MAX_GROUP_CHARS for g in value):
                raise UpstreamRefused(f"a group that is not a string of at most {MAX_GROUP_CHARS} characters")
        elif len(json.dumps(value, ensure_ascii=False)) > MAX_CLAIM_CHARS:
            raise UpstreamRefused(f"claim {name[:64]!r} is longer than {MAX_CLAIM_CHARS} characters")


class OidcConnector(CallbackConnector, RefreshingConnector, LoggingOutConnector):
    kind = "oidc"

    def __init__(self, settings: UpstreamSettings, *, issuer: str, http: httpx.AsyncClient):
        assert settings.oidc is not None
        self.name = settings.name
        self.display_name = settings.display_name
        self.config: OidcUpstreamSettings = settings.oidc
        self.redirect_uri = issuer + settings.oidc.callback_path
        self.http = http
        self._metadata: dict | None = None
        self._metadata_at = 0.0
        self._jwks: jwk.JWKSet | None = None
        self._jwks_at = 0.0
        self._unknown_kid_refetch_at = float("-inf")

    @property
    def callback_path(self) -> str:
        return self.config.callback_path

    # -- talking to the upstream ------------------------------------------------------------------

    async def _request(self, method: str, url: str, *, what: str, **kwargs) -> tuple[int, bytes]:
        """(status, body), the body read up to MAX_ANSWER_BYTES and no further (an upstream sending
        more is refused before the rest is even received)."""
        try:
            async with self.http.stream(method, url, timeout=self.config.timeout, **kwargs) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                    raise UpstreamRefused(f"{what}: an answer of {declared} bytes (at most {MAX_ANSWER_BYTES})")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise UpstreamRefused(f"{what}: an answer over {MAX_ANSWER_BYTES} bytes")
                return response.status_code, bytes(body)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(f"{what}: {type(exc).__name__}") from None

    async def _get_json(self, url: str, **kwargs) -> dict:
        status, body = await self._request("GET", url, what=f"GET {url}", **kwargs)
        if status >= 500:
            raise UpstreamUnavailable(f"GET {url}: HTTP {status}")
        if status != 200:
            raise UpstreamRefused(f"GET {url}: HTTP {status}")
        try:
            document = json.loads(body)
        except ValueError:
            raise UpstreamRefused(f"GET {url}: not JSON") from None
        if not isinstance(document, dict):
            raise UpstreamRefused(f"GET {url}: not a JSON object")
        return document

    async def metadata(self) -> dict:
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL:
            metadata = await self._get_json(self.config.discovery_url)
            if metadata.get("issuer", "").rstrip("/") != self.config.issuer and \
                    metadata.get("issuer") not in self.config.issuer_aliases and not self.config.issuer_template:
                raise UpstreamRefused(f"discovery issuer {metadata.get('issuer')!r} is not {self.config.issuer!r}")
            self._metadata = {**metadata, **self.config.endpoints}
            self._metadata_at = time.monotonic()
        return self._metadata

    async def signing_key(self, header: dict) -> jwk.JWK:
        """The upstream's key for this token: cached JWKS, refetched (at most once a minute) when
        the ``kid`` is unknown — that is how a rotation at the upstream reaches us."""
        kid = header.get("kid")
        if self._jwks is None or time.monotonic() - self._jwks_at > JWKS_TTL:
            await self._fetch_jwks()
        key = self._find_key(kid, header["alg"])
        if key is None and time.monotonic() - self._unknown_kid_refetch_at > JWKS_REFETCH_INTERVAL:
            # A token made with a key we do not know: the upstream may have rotated. A forger can
            # send unknown kids too, so this costs the upstream one request a minute at most; a
            # fetch that failed (an outage) does not count, so the first sign-in after it recovers.
            await self._fetch_jwks()
            self._unknown_kid_refetch_at = time.monotonic()
            key = self._find_key(kid, header["alg"])
        if key is None:
            raise UpstreamRefused(f"no key {kid!r} for {header['alg']} in the upstream's JWKS")
        return key

    async def _fetch_jwks(self) -> None:
        metadata = await self.metadata()
        document = await self._get_json(metadata["jwks_uri"])
        try:
            self._jwks = jwk.JWKSet.from_json(json.dumps(document))
        except (JWException, ValueError, TypeError):
            raise UpstreamRefused("the upstream's JWKS is malformed") from None
        self._jwks_at = time.monotonic()

    def _find_key(self, kid: str | None, algorithm: str) -> jwk.JWK | None:
        if self._jwks is None:
            return None
        wanted_type = KEY_TYPES.get(algorithm[:2])
        candidates = [k for k in self._jwks["keys"] if k.get("kty") == wanted_type
                      and k.get("use", "sig") == "sig" and (kid is None or k.get("kid") == kid)]
        return candidates[0] if len(candidates) == 1 or (kid and candidates) else None

    # -- the connector interface --------------------------------------------------------------------

    async def login_url(self, state: str, hints: LoginHints) -> tuple[str, ConnectorData]:
        metadata = await self.metadata()
        nonce = random_token(24) if self.config.use_nonce else None
        code_verifier = random_token(48) if self.config.use_pkce else None
        params = {"response_type": "code", "client_id": self.config.client_id,
                  "redirect_uri": self.redirect_uri, "scope": " ".join(self.config.scopes), "state": state,
                  **self.config.authorize_params}
        if nonce:
            params["nonce"] = nonce
        if code_verifier:
            params.update(code_challenge=base64url_sha256(code_verifier), code_challenge_method="S256")
        if hints.login_hint:
            params["login_hint"] = hints.login_hint
        if hints.ui_locales:
            params["ui_locales"] = hints.ui_locales
        if self.config.forward_prompt:
            self.ask_for_reauthentication(params, hints)
        separator = "&" if "?" in metadata["authorization_endpoint"] else "?"
        return (metadata["authorization_endpoint"] + separator + urlencode(params),
                ConnectorData(nonce=nonce, code_verifier=code_verifier))

    @staticmethod
    def ask_for_reauthentication(params: dict, hints: LoginHints) -> None:
        """An app's demand for a fresh sign-in (OIDC Core §3.1.2.1), passed on: the person signs in
        again at the upstream too, not through its still-open session. Other prompt values are ours
        (none is answered by op-proxy, consent asked by it); a configured prompt (Google's
        select_account) is kept, prompt being a space-separated list."""
        if "login" in hints.prompt:
            params["prompt"] = " ".join(dict.fromkeys([*params.get("prompt", "").split(), "login"]))
        if hints.max_age is not None:
            params["max_age"] = str(hints.max_age)

    async def handle_callback(self, data: ConnectorData, params: dict[str, str]) -> Identity:
        """Everything one callback asks the upstream (token, keys, introspection, userinfo) shares one
        deadline (``sign_in_deadline``), however many requests that takes; each request also has its
        own ``timeout``."""
        deadline = self.config.sign_in_deadline
        try:
            async with asyncio.timeout(deadline):
                return await self.signed_in_person(data, params)
        except TimeoutError:
            raise UpstreamUnavailable(f"no answer within the sign-in deadline ({deadline:g} s)") from None

    async def signed_in_person(self, data: ConnectorData, params: dict[str, str]) -> Identity:
        if params.get("error"):
            raise UpstreamError(params["error"], params.get("error_description"))
        metadata = await self.metadata()
        self.check_iss_parameter(params, metadata)
        if not params.get("code"):
            raise UpstreamRefused("the callback has neither code nor error")
        form = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": self.redirect_uri}
        if data.code_verifier:
            form["code_verifier"] = data.code_verifier
        tokens = await self.token_request(metadata, form)
        claims = await self.verify_id_token(tokens.get("id_token"), data.nonce)
        if self.config.introspect_at_sign_in:
            await self.check_token_is_active(metadata, tokens.get("access_token"), claims["sub"])
        return self.identity(await self.with_userinfo(metadata, claims, tokens), tokens)

    async def check_token_is_active(self, metadata: dict, access_token: str | None, subject: str) -> None:
        if not access_token:
            raise UpstreamRefused("introspect_at_sign_in is set but the token response has no access_token")
        answer = await self.introspect(metadata, access_token)
        if answer.get("active") is not True:
            raise UpstreamRefused("introspection: the access token is not active")
        if answer.get("sub") is not None and answer["sub"] != subject:
            raise UpstreamRefused("introspection: the access token belongs to another subject")

    async def introspect(self, metadata: dict, access_token: str) -> dict:
        """RFC 7662 with the client's own credentials: ``{active, sub, scope, ...}``."""
        url = self.config.introspection_endpoint or metadata.get("introspection_endpoint")
        if not url:
            raise UpstreamRefused("no introspection_endpoint configured or advertised for this upstream")
        return await self.post_as_client(url, {"token": access_token}, what="introspection")

    async def with_userinfo(self, metadata: dict, claims: dict, tokens: dict) -> dict:
        if self.config.fetch_userinfo and metadata.get("userinfo_endpoint") and tokens.get("access_token"):
            userinfo = await self.userinfo(metadata, tokens["access_token"])
            if userinfo.get("sub") != claims["sub"]:
                raise UpstreamRefused("userinfo sub is not the ID token's (OIDC Core §5.3.2)")
            claims = {**userinfo, **claims}
        return claims

    async def refresh(self, refresh_token: str, subject: str) -> Identity:
        """OIDC Core §12: the upstream still vouches for the person (and may say more about them)."""
        metadata = await self.metadata()
        tokens = await self.token_request(metadata, {"grant_type": "refresh_token", "refresh_token": refresh_token})
        claims = await self.verify_id_token(tokens["id_token"], None) if tokens.get("id_token") else None
        if claims is None:
            return Identity(self.name, subject, {}, upstream_refresh_token=tokens.get("refresh_token")
                            or refresh_token)
        identity = self.identity(await self.with_userinfo(metadata, claims, tokens), tokens)
        if identity.subject != subject:
            raise UpstreamRefused("the refreshed ID token names another person (OIDC Core §12.2)")
        if identity.upstream_refresh_token is None:
            identity = replace(identity, upstream_refresh_token=refresh_token)
        return identity

    async def end_session_url(self, id_token: str | None, post_logout_redirect_uri: str, state: str) -> str | None:
        """Where to send the person to sign out upstream too (RP-Initiated Logout 1.0), if anywhere."""
        if not self.config.logout or not id_token:
            return None
        try:
            endpoint = (await self.metadata()).get("end_session_endpoint")
        except LoginFailed:
            return None  # the upstream is down: our own sign-out has happened, that must do
        if not endpoint:
            return None
        query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": post_logout_redirect_uri,
                           "client_id": self.config.client_id, "state": state})
        return endpoint + ("&" if "?" in endpoint else "?") + query

    # -- the steps ----------------------------------------------------------------------------------

    def check_iss_parameter(self, response: dict, metadata: dict) -> None:
        """RFC 9207 §2.4: compare ``iss`` when sent; require it when the upstream advertises it."""
        if "iss" in response:
            if response["iss"] not in self.expected_issuers({}):
                raise UpstreamRefused("the callback's iss is another issuer (mix-up?)")
        elif metadata.get("authorization_response_iss_parameter_supported"):
            raise UpstreamRefused("the callback lacks the iss parameter the upstream advertises")

    async def token_request(self, metadata: dict, form: dict) -> dict:
        return await self.post_as_client(metadata["token_endpoint"], form, what="token endpoint")

    async def post_as_client(self, url: str, form: dict, *, what: str) -> dict:
        """POST a form to the upstream authenticated as op-proxy (Basic or in the body); its JSON answer.
        Unreachable or 5xx: UpstreamUnavailable; an error or a non-JSON answer: UpstreamRefused."""
        auth = None
        if self.config.token_endpoint_auth_method == "client_secret_basic":
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
        else:
            form = {**form, "client_id": self.config.client_id, "client_secret": self.config.client_secret}
        status, content = await self._request("POST", url, what=what, data=form, auth=auth,
                                               headers={"Accept": "application/json"})
        if status >= 500:
            raise UpstreamUnavailable(f"{what}: HTTP {status}")
        try:
            body = json.loads(content)
        except ValueError:
            raise UpstreamRefused(f"{what}: HTTP {status}, not JSON") from None
        if status != 200 or not isinstance(body, dict) or "error" in body:
            error = body.get("error") if isinstance(body, dict) else None
            raise UpstreamRefused(f"{what}: {error if isinstance(error, str) and len(error) < 64 else status}")
        return body

    def expected_issuers(self, claims: dict) -> set[str]:
        issuers = {self.config.issuer, self.config.issuer + "/", *self.config.issuer_aliases}
        if self.config.issuer_template:
            try:
                issuers.add(self.config.issuer_template.format(**claims))
            except (KeyError, IndexError):
                pass
        return issuers

    async def verify_id_token(self, id_token: str | None, nonce: str | None) -> dict:
        if not id_token:
            raise UpstreamRefused("the token response has no id_token")
        try:
            parsed = jws.JWS()
            parsed.deserialize(id_token)
            header = parsed.jose_header
        except (JWException, ValueError, TypeError):
            raise UpstreamRefused("the id_token is not a JWS") from None
        algorithm = header.get("alg")
        # Only algorithms configured for this upstream; never "none", and an HS* token is checked
        # with the client secret only, so a public key can never be used as an HMAC secret.
        if algorithm not in self.config.id_token_signing_algs:
            raise UpstreamRefused(f"id_token alg {algorithm!r} is not accepted for this upstream")
        if algorithm.startswith("HS"):
            secret = self.config.client_secret.encode()
            if len(secret) * 8 < int(algorithm[2:]):
                raise UpstreamRefused(f"the client secret is too short to verify {algorithm} (RFC 7518 §3.2)")
            key = jwk.JWK(kty="oct", k=base64.urlsafe_b64encode(secret).rstrip(b"=").decode())
        else:
            key = await self.signing_key(header)
        try:
            parsed.verify(key, alg=algorithm)
            claims = json.loads(parsed.payload)
        except (JWException, ValueError, TypeError):
            raise UpstreamRefused("the id_token signature does not verify") from None
        self.check_id_token_claims(claims, nonce)
        return claims

    def check_id_token_claims(self, claims: dict, nonce: str | None) -> None:
        """OIDC Core §3.1.3.7."""
        if claims.get("iss") not in self.expected_issuers(claims):
            raise UpstreamRefused("id_token iss is not this upstream")
        audience = claims.get("aud")
        audience = [audience] if isinstance(audience, str) else audience or []
        if self.config.client_id not in audience:
            raise UpstreamRefused("id_token aud is not our client id")
        if len(audience) > 1 and claims.get("azp") != self.config.client_id:
            raise UpstreamRefused("id_token has several audiences and azp is not our client id")
        now = time.time()
        if not isinstance(claims.get("exp"), (int, float)) or claims["exp"] + CLOCK_SKEW < now:
            raise UpstreamRefused("id_token has expired")
        if isinstance(claims.get("iat"), (int, float)) and claims["iat"] - CLOCK_SKEW > now:
            raise UpstreamRefused("id_token was issued in the future")
        if nonce is not None and claims.get("nonce") != nonce:
            raise UpstreamRefused("id_token nonce is not the one we sent (replay?)")
        if not claims.get("sub"):
            raise UpstreamRefused("id_token has no sub")

    async def userinfo(self, metadata: dict, access_token: str) -> dict:
        return await self._get_json(metadata["userinfo_endpoint"],
                                    headers={"Authorization": f"Bearer {access_token}"})

    def identity(self, claims: dict, tokens: dict) -> Identity:
        missing = [c for c in self.config.subject_claims if not claims.get(c)]
        if missing:
            raise UpstreamRefused(f"the upstream did not send {', '.join(missing)}")
        subject = ":".join(str(claims[c]) for c in self.config.subject_claims)
        if len(subject) > MAX_SUBJECT_CHARS:
            raise UpstreamRefused(f"the subject is longer than {MAX_SUBJECT_CHARS} characters")
        if len(tokens.get("id_token") or "") > MAX_ID_TOKEN_CHARS:
            raise UpstreamRefused(f"the id_token is longer than {MAX_ID_TOKEN_CHARS} characters")
        acr = self.config.acr or claims.get("acr")
        if acr is not None and (not isinstance(acr, str) or len(acr) > MAX_SUBJECT_CHARS):
            raise UpstreamRefused(f"acr is not a string of at most {MAX_SUBJECT_CHARS} characters")
        amr = claims.get("amr")
        amr = [amr] if isinstance(amr, str) else amr if isinstance(amr, list) else []
        profile = self.normalized_profile(claims)
        check_sizes({**profile, "acr": acr, "amr": amr})
        return Identity(upstream=self.name, subject=subject, profile=profile,
                        acr=acr, amr=list(amr),
                        upstream_id_token=tokens.get("id_token"),
                        upstream_refresh_token=tokens.get("refresh_token") if self.config.refresh else None,
                        auth_time=upstream_auth_time(claims))

    def normalized_profile(self, claims: dict) -> dict:
        """The configured claim mapping into the old gateway's normalized fields, plus passthrough."""
        profile = {field: claims[claim] for field, claim in self.config.claim_mapping.items()
                   if claims.get(claim) not in (None, "")}
        for claim in self.config.passthrough_claims:
            if claims.get(claim) not in (None, ""):
                profile[claim] = claims[claim]
        return profile
