"""A loopback man-in-the-middle in front of an upstream (``tests/support/upstream.py``) that alters
the ID token in token responses, to check that op-proxy verifies what its upstreams send.

The proxy presents itself as the upstream: start the upstream with its *issuer* on the proxy's port
(and ``port`` its own), so discovery, the ID tokens' ``iss`` and every endpoint name the proxy::

    proxy_port, upstream_port = free_port(), free_port()
    config = thaid_config(upstream_port, "op-proxy", "s3cret", redirect_uri,
                          issuer=f"http://127.0.0.1:{proxy_port}")
    upstream = Upstream(config, tmp_path).start()
    proxy = TamperingProxy(config, port=proxy_port).start()   # forwards to config["port"]
    ... configure op-proxy with issuer proxy.url ...
    proxy.scenario = "wrong_iss"        # any time; None passes everything through

Every request is forwarded as is (the Host header too, so oidc-provider names the proxy in the
URLs it builds); on the way back the discovery document and Location headers are rewritten so
anything pointing at the upstream's own address points at the proxy, and a JSON response with an
``id_token`` (the token endpoint) gets that token altered per ``scenario``:

``bad_signature``          same header and claims, signed by another key of the same kty and the
                           same kid (HS256: another secret)
``unknown_kid``            signed by another key with a new kid
``wrong_iss`` / ``wrong_aud`` / ``expired`` / ``wrong_nonce``
                           claim changed (iss -> ``proxy.wrong_iss``, aud -> ``proxy.wrong_aud``,
                           exp/iat an hour in the past, nonce -> another one), re-signed with the
                           upstream's REAL key (its private JWKS from the config; HS256: the
                           client's secret), so only the claim check can catch it
``old_auth_time``          auth_time two hours in the past, re-signed with the real key: an upstream
                           that answered from its own old session
``alg_none``               ``{"alg": "none"}``, the same claims, an empty signature
``hs256_with_public_key``  ``{"alg": "HS256", "kid": <real kid>}`` HMAC'd with the upstream's
                           public key as PEM (SubjectPublicKeyInfo) bytes: the alg-confusion attack

``userinfo_other_sub``     the ID token untouched; a userinfo answer (JSON with ``sub`` and no
                           ``id_token``) names another subject, as a mixed-up or malicious upstream would
``introspection_inactive`` the ID token untouched; an introspection answer (JSON with ``active``) says
                           ``{"active": false}``, as for a token the upstream has revoked

``oversized_token_response`` the ID token re-signed with the real key after a 100,000-character
                           ``name`` and 5,000 ``groups`` were put in (a token response of megabytes)
``long_name``              a ``name`` of 3,000 characters, re-signed: an answer of normal size, one
                           claim far longer than any real name
``many_groups``            300 ``groups``, re-signed

``jwks_unavailable``       the upstream's JWKS answers 503 (an outage of that one endpoint); the
                           rest passes through
``slow``                   every POST (token, introspection) is answered ``proxy.slow_seconds`` late

``proxy.exchanges`` lists ``(scenario, original_id_token, sent_id_token)`` for each token response.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
from jwcrypto import jwk, jws

SCENARIOS = (None, "bad_signature", "unknown_kid", "wrong_iss", "wrong_aud", "expired", "wrong_nonce",
             "alg_none", "hs256_with_public_key", "userinfo_other_sub",
             "introspection_inactive", "old_auth_time", "oversized_token_response", "long_name", "many_groups",
             "jwks_unavailable", "slow")

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "content-encoding"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split_jwt(token: str) -> tuple[dict, dict]:
    """(header, claims) of a compact JWS, unverified."""
    header, payload = token.split(".")[:2]
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


def _encode(obj: dict) -> str:
    return b64url(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode())


def sign(header: dict, claims: dict, key: jwk.JWK) -> str:
    """A compact JWS of ``claims`` with exactly ``header`` as its protected header."""
    token = jws.JWS(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode())
    token.add_signature(key, alg=header["alg"], protected=json.dumps(header, separators=(",", ":")))
    return token.serialize(compact=True)


def hmac_sign(header: dict, claims: dict, secret: bytes) -> str:
    signing_input = f"{_encode(header)}.{_encode(claims)}"
    return signing_input + "." + b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())


def _oct(secret: bytes) -> jwk.JWK:
    return jwk.JWK(kty="oct", k=b64url(secret))


class TamperingProxy:
    def __init__(self, upstream_config: dict, port: int, *, scenario: str | None = None,
                 target: str | None = None):
        self.config = upstream_config
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.target = (target or f"http://127.0.0.1:{upstream_config['port']}").rstrip("/")
        self.scenario = scenario
        self.wrong_iss = "https://attacker.example"
        self.wrong_aud = "someone-else"
        self.slow_seconds = 3.0
        self.exchanges: list[tuple[str | None, str, str]] = []
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self._http = httpx.Client(follow_redirects=False, timeout=15)
        self._server: ThreadingHTTPServer | None = None

    @property
    def scenario(self) -> str | None:
        return self._scenario

    @scenario.setter
    def scenario(self, value: str | None) -> None:
        if value not in SCENARIOS:
            raise ValueError(f"unknown scenario {value!r}; one of {SCENARIOS}")
        self._scenario = value

    # --- the server ---------------------------------------------------------------------------------

    def start(self) -> TamperingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._http.close()

    def __enter__(self) -> TamperingProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _read_body(self, handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(handler.rfile.read(size))
                handler.rfile.readline()
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        body = self._read_body(handler)
        scenario = self.scenario
        if scenario == "jwks_unavailable" and handler.path.startswith(self.jwks_path()):
            self.requests.append((handler.command, handler.path, 503))
            self._reply(handler, 503, [("Content-Type", "text/plain")], b"temporarily unavailable")
            return
        if scenario == "slow" and handler.command == "POST":
            time.sleep(self.slow_seconds)
        headers = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP]
        try:
            response = self._http.request(handler.command, self.target + handler.path, headers=headers,
                                          content=body or None)
        except httpx.HTTPError as error:
            payload = json.dumps({"error": "bad_gateway", "error_description": str(error)}).encode()
            self._reply(handler, 502, [("Content-Type", "application/json")], payload)
            return
        content = response.content
        out_headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_BY_HOP]
        if response.headers.get("content-type", "").startswith("application/json"):
            content = self._rewrite_json(handler.path, content)
        out_headers = [(k, self._rebase(v) if k.lower() == "location" else v) for k, v in out_headers]
        self.requests.append((handler.command, handler.path, response.status_code))
        self._reply(handler, response.status_code, out_headers, content, head=handler.command == "HEAD")

    @staticmethod
    def _reply(handler, status: int, headers, content: bytes, head: bool = False) -> None:
        handler.send_response(status)
        for key, value in headers:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        if not head:
            handler.wfile.write(content)

    def jwks_path(self) -> str:
        prefix = urlsplit(self.config["issuer"]).path.rstrip("/")
        return prefix + self.config.get("routes", {}).get("jwks", "/jwks")

    # --- rewriting --------------------------------------------------------------------------------

    def _rebase(self, value):
        """Anything naming the upstream's own address names the proxy instead."""
        if isinstance(value, str):
            for origin in (self.target, self.target.replace("127.0.0.1", "localhost")):
                if value == origin or value.startswith(origin + "/") or value.startswith(origin + "?"):
                    return self.url + value[len(origin):]
            return value
        if isinstance(value, list):
            return [self._rebase(v) for v in value]
        if isinstance(value, dict):
            return {k: self._rebase(v) for k, v in value.items()}
        return value

    def _rewrite_json(self, path: str, content: bytes) -> bytes:
        try:
            document = json.loads(content)
        except ValueError:
            return content
        if not isinstance(document, dict):
            return content
        if path.split("?")[0].endswith("/.well-known/openid-configuration"):
            return json.dumps(self._rebase(document)).encode()
        if isinstance(document.get("id_token"), str):
            scenario = self.scenario  # read once: it may change meanwhile
            original = document["id_token"]
            document["id_token"] = self.tamper(original, scenario)
            self.exchanges.append((scenario, original, document["id_token"]))
            return json.dumps(document).encode()
        if "active" in document and self.scenario == "introspection_inactive":
            self.exchanges.append(("introspection_inactive", document["active"], False))
            return json.dumps({"active": False}).encode()
        if isinstance(document.get("sub"), str) and self.scenario == "userinfo_other_sub":
            self.exchanges.append(("userinfo_other_sub", document["sub"], "someone-else"))
            return json.dumps({**document, "sub": "someone-else"}).encode()
        return content

    # --- the scenarios -------------------------------------------------------------------------------

    def _real_key(self, header: dict, claims: dict) -> jwk.JWK:
        if header["alg"].startswith("HS"):
            return _oct(self._client_secret(claims).encode())
        keys = self.config["jwks"]["keys"]
        found = next((k for k in keys if k.get("kid") == header.get("kid")), keys[0])
        return jwk.JWK(**found)

    def _client_secret(self, claims: dict) -> str:
        audience = claims.get("azp") or (claims["aud"][0] if isinstance(claims["aud"], list) else claims["aud"])
        return next(c["client_secret"] for c in self.config["clients"] if c["client_id"] == audience)

    @staticmethod
    def _another_key_like(key: jwk.JWK) -> jwk.JWK:
        if key.key_type == "EC":
            return jwk.JWK.generate(kty="EC", crv=key.key_curve)
        if key.key_type == "RSA":
            return jwk.JWK.generate(kty="RSA", size=2048)
        if key.key_type == "OKP":
            return jwk.JWK.generate(kty="OKP", crv=key.key_curve)
        return _oct(secrets.token_bytes(32))

    def tamper(self, id_token: str, scenario: str | None) -> str:
        if scenario in (None, "userinfo_other_sub", "introspection_inactive", "jwks_unavailable", "slow"):
            return id_token
        header, claims = split_jwt(id_token)
        real = self._real_key(header, claims)
        now = int(time.time())
        if scenario == "wrong_iss":
            return sign(header, {**claims, "iss": self.wrong_iss}, real)
        if scenario == "wrong_aud":
            aud = [self.wrong_aud] if isinstance(claims["aud"], list) else self.wrong_aud
            changed = {**claims, "aud": aud}
            changed.pop("azp", None)
            return sign(header, changed, real)
        if scenario == "expired":
            return sign(header, {**claims, "iat": now - 7200, "exp": now - 3600}, real)
        if scenario == "oversized_token_response":
            return sign(header, {**claims, "name": "ก" * 100_000, "groups": [f"g{i}" for i in range(5000)]}, real)
        if scenario == "long_name":
            return sign(header, {**claims, "name": "ก" * 3000}, real)
        if scenario == "many_groups":
            return sign(header, {**claims, "groups": [f"group-{i}" for i in range(300)]}, real)
        if scenario == "old_auth_time":
            return sign(header, {**claims, "auth_time": now - 7200}, real)
        if scenario == "wrong_nonce":
            return sign(header, {**claims, "nonce": "not-" + secrets.token_urlsafe(16)}, real)
        if scenario == "bad_signature":
            return sign(header, claims, self._another_key_like(real))
        if scenario == "unknown_kid":
            other = self._another_key_like(real)
            kid = other.thumbprint() if other.key_type != "oct" else "unknown-" + secrets.token_hex(4)
            return sign({**header, "kid": kid}, claims, other)
        if scenario == "alg_none":
            forged = {"alg": "none", **({"typ": header["typ"]} if "typ" in header else {})}
            return f"{_encode(forged)}.{_encode(claims)}."
        if scenario == "hs256_with_public_key":
            if real.key_type == "oct":
                raise ValueError("hs256_with_public_key needs an upstream with an RSA or EC key")
            forged = {**header, "alg": "HS256"}
            return hmac_sign(forged, claims, real.export_to_pem(private_key=False, password=None))
        raise ValueError(f"unknown scenario {scenario!r}")
