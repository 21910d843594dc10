"""Real upstream identity providers for the tests: Node's certified ``oidc-provider`` run by
``tests/peers/upstream.mjs``, configured to look like ThaID, PSU SSO (authentik) or Google.

    config = thaid_config(free_port(), "op-proxy", "thaid-secret", "http://127.0.0.1:PORT/callback/thaid")
    with Upstream(config, tmp_path) as thaid:      # or Upstream(...).start() / .stop()
        thaid.issuer                                # discovery at thaid.issuer + "/.well-known/..."

What a person sees there (oidc-provider's development interactions; ``fill_upstream_page``
fills them):

* login page, ``GET ISSUER/interaction/<uid>``: one ``<form method="post" action=".../interaction/<uid>">``
  with ``prompt=login`` (hidden), ``login`` and ``password`` (both text inputs, no value). ``login``
  must be an account id (a key of the config's ``accounts``; for ThaID the pid), any password is
  accepted. An unknown login is sent back (303) to the login page, which then shows "unknown account".
* consent page, same URL: a form with ``prompt=consent`` (hidden) and a submit button; post it as is.
  oidc-provider asks every time a client wants scopes not yet granted in that browser session.
* then a 303 to the client's redirect_uri with ``code`` and ``state`` (and ``iss`` unless the config
  says ``iss_in_authorization_response: false``, as the ThaID preset does). Errors (e.g. the abort
  link ``.../interaction/<uid>/abort``) come back the same way with ``error``/``error_description``.
* logout (``end_session``), ``GET ISSUER/session/end?id_token_hint=...&post_logout_redirect_uri=...``:
  a page whose ``<form id="op.logoutForm" method="post" action=".../session/end/confirm">`` carries
  ``xsrf`` (hidden); the "Yes, sign me out" button sits outside the form, so add ``logout=yes``.
  Then a 303 to the post_logout_redirect_uri (with ``state`` if one was sent).

The person's cookies (``_interaction``, ``_interaction_resume``, ``_session``) are plain (not Secure)
on http and scoped to the issuer's path, so one ``httpx.Client`` keeps them.
"""

from __future__ import annotations

import hashlib
import json
import queue
import random
import re
import shutil
import subprocess
import threading
import time
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

from jwcrypto import jwk

from tests.support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
SCRIPT = PEERS / "upstream.mjs"


def node_available() -> str | None:
    """The node binary, if Node and ``tests/peers/node_modules/oidc-provider`` are installed."""
    node = shutil.which("node")
    return node if node and (PEERS / "node_modules" / "oidc-provider").exists() else None


# --- keys ---------------------------------------------------------------------------------------

def _jwks(key: jwk.JWK, alg: str) -> dict:
    private = json.loads(key.export_private())
    private.update(kid=key.thumbprint(), use="sig", alg=alg)
    return {"keys": [private]}


def generate_ec_jwks(alg: str = "ES256") -> dict:
    """A private JWKS with one P-256 key (ThaID signs its ID tokens ES256), ``kid`` = thumbprint."""
    return _jwks(jwk.JWK.generate(kty="EC", crv="P-256"), alg)


def generate_rsa_jwks(alg: str = "RS256", size: int = 2048) -> dict:
    """A private JWKS with one RSA key (Google, authentik with a signing key)."""
    return _jwks(jwk.JWK.generate(kty="RSA", size=size), alg)


def public_jwks(jwks: dict) -> dict:
    return {"keys": [json.loads(jwk.JWK(**key).export_public()) for key in jwks["keys"]]}


# --- Thai national ID numbers ---------------------------------------------------------------------

def pid_check_digit(first12: str) -> int:
    """Thai national ID checksum: (11 - sum(digit_i * (13 - i)) mod 11) mod 10, i = 0..11."""
    return (11 - sum(int(d) * (13 - i) for i, d in enumerate(first12)) % 11) % 10


def valid_pid(pid: str) -> bool:
    return bool(re.fullmatch(r"[1-8]\d{12}", pid)) and pid_check_digit(pid[:12]) == int(pid[12])


def make_pid(first12: str | None = None, *, seed: int | None = None) -> str:
    """A 13-digit pid with a valid check digit (random, or from the 12 digits given)."""
    if first12 is None:
        rng = random.Random(seed)
        first12 = str(rng.randint(1, 8)) + "".join(str(rng.randint(0, 9)) for _ in range(11))
    return first12 + str(pid_check_digit(first12))


# --- ThaID ----------------------------------------------------------------------------------------

THAID_SCOPES = ("openid pid address gender birthdate given_name middle_name family_name name given_name_en "
                "middle_name_en family_name_en name_en title title_en ial smartcard_code date_of_expiry "
                "date_of_issuance").split()

# ThaID's own paths (the trailing slash matters there, and here too).
THAID_ROUTES = {"authorization": "/api/v2/oauth2/auth/", "token": "/api/v2/oauth2/token/",
                "userinfo": "/api/v2/oauth2/userinfo/", "introspection": "/api/v2/oauth2/introspect/",
                "revocation": "/api/v2/oauth2/revoke/", "jwks": "/jwks/"}


def thaid_account(pid: str = "1100700000019", *, title="นาย", given_name="สมชาย", family_name="ใจดี",
                  title_en="Mr.", given_name_en="Somchai", family_name_en="Jaidee", gender="male",
                  birthdate="1990-05-17", address: str | dict | None = None, **extra) -> dict:
    """ThaID's claims for one person (names Thai and English; ``address`` a string by default)."""
    assert valid_pid(pid), f"invalid pid {pid}"
    claims = {
        "pid": pid, "title": title, "given_name": given_name, "middle_name": "", "family_name": family_name,
        "name": f"{title}{given_name} {family_name}",
        "title_en": title_en, "given_name_en": given_name_en, "middle_name_en": "",
        "family_name_en": family_name_en, "name_en": f"{title_en} {given_name_en} {family_name_en}",
        "gender": gender, "birthdate": birthdate, "ial": "2.3",
        "address": address if address is not None else
        "99/9 หมู่ 1 ถนนกาญจนวนิชย์ ตำบลคอหงส์ อำเภอหาดใหญ่ จังหวัดสงขลา 90110",
        "smartcard_code": "JT" + pid[-10:], "date_of_issuance": "2021-05-17", "date_of_expiry": "2029-05-16",
    }
    claims.update(extra)
    return claims


DEFAULT_THAID_ACCOUNTS = {
    "1100700000019": thaid_account("1100700000019"),
    "3901100123454": thaid_account("3901100123454", title="นางสาว", given_name="สมหญิง", family_name="รักเรียน",
                                   title_en="Miss", given_name_en="Somying", family_name_en="Rakrian",
                                   gender="female", birthdate="1985-11-02"),
}


def _client(client_id, client_secret, redirect_uri, post_logout_redirect_uris=None, method="client_secret_basic"):
    client = {"client_id": client_id, "client_secret": client_secret,
              "redirect_uris": [redirect_uri] if isinstance(redirect_uri, str) else list(redirect_uri),
              "token_endpoint_auth_method": method}
    if post_logout_redirect_uris:
        client["post_logout_redirect_uris"] = list(post_logout_redirect_uris)
    return client


def thaid_config(port: int, client_id: str, client_secret: str, redirect_uri: str | list[str],
                 accounts: dict | None = None, *, issuer: str | None = None, jwks: dict | None = None,
                 post_logout_redirect_uris=None, **overrides) -> dict:
    """Like DOPA's ThaID: ES256 ID tokens with a kid, client_secret_basic only, no ``iss`` in the
    callback, every scope claim in the ID token too, no refresh tokens, ``expire_in`` (absolute)
    in token responses, ThaID's endpoint paths, access tokens for 15 minutes. ``accounts`` is
    {pid: claims} (see ``thaid_account``); the pid is the ``sub``. ``overrides`` replace keys."""
    config = {
        "issuer": issuer or f"http://127.0.0.1:{port}", "port": port,
        "jwks": jwks or generate_ec_jwks(), "id_token_signing_alg": "ES256",
        "clients": [_client(client_id, client_secret, redirect_uri, post_logout_redirect_uris)],
        "scopes": THAID_SCOPES, "claims": {scope: [scope] for scope in THAID_SCOPES if scope != "openid"},
        "accounts": accounts if accounts is not None else DEFAULT_THAID_ACCOUNTS,
        "iss_in_authorization_response": False, "pkce_required": False, "refresh_tokens": False,
        "end_session": False, "claims_in_id_token": True, "token_response_expire_in": True,
        "routes": THAID_ROUTES, "ttl": {"AccessToken": 900, "AuthorizationCode": 60, "IdToken": 900},
    }
    config.update(overrides)
    return config


# --- PSU SSO (authentik) -------------------------------------------------------------------------

PSU_PROFILE_CLAIMS = ["psu_id", "display_name_th", "first_name_th", "last_name_th", "department_th",
                      "position_th", "campus_th", "office_name_th", "faculty_id", "department_id",
                      "campus_id", "groups"]


def psu_account(username: str = "somchai.j", *, psu_id="6400001", first_name_th="สมชาย", last_name_th="ใจดี",
                first_name_en="Somchai", last_name_en="Jaidee", email=None, groups=("staff", "developer"),
                **extra) -> tuple[str, dict]:
    """(sub, claims) for one PSU person; authentik's sub is an opaque hash of the user."""
    claims = {
        "preferred_username": username, "nickname": username,
        "name": f"{first_name_en} {last_name_en}", "given_name": first_name_en, "family_name": last_name_en,
        "email": email or f"{username}@psu.ac.th", "email_verified": True,
        "psu_id": psu_id, "display_name_th": f"{first_name_th} {last_name_th}",
        "first_name_th": first_name_th, "last_name_th": last_name_th,
        "department_th": "ภาควิชาวิศวกรรมคอมพิวเตอร์", "position_th": "นักวิชาการคอมพิวเตอร์",
        "campus_th": "วิทยาเขตหาดใหญ่", "office_name_th": "คณะวิศวกรรมศาสตร์",
        "faculty_id": "F10", "department_id": "D1001", "campus_id": "C01", "groups": list(groups),
    }
    claims.update(extra)
    return hashlib.sha256(f"psu:{username}".encode()).hexdigest(), claims


DEFAULT_PSU_ACCOUNTS = dict([psu_account(), psu_account(
    "somying.r", psu_id="6400002", first_name_th="สมหญิง", last_name_th="รักเรียน", first_name_en="Somying",
    last_name_en="Rakrian", groups=("student",))])


def psu_config(port: int, client_id: str, client_secret: str, redirect_uri: str | list[str],
               accounts: dict | None = None, *, slug: str = "psu", alg: str = "HS256", jwks: dict | None = None,
               issuer: str | None = None, post_logout_redirect_uris=None, **overrides) -> dict:
    """Like PSU's authentik: per-application issuer ``.../application/o/<slug>``, HS256 ID tokens
    signed with the client secret (``alg="RS256"`` for a signing key), scopes
    ``openid profile email psu_profile``, claims in the ID token, end session, refresh tokens for
    offline_access. Unlike authentik, every endpoint lives under the issuer path. ``accounts`` is
    {sub: claims} (see ``psu_account``).
    ``token_endpoint_auth_method`` (default client_secret_basic) may be given as an override."""
    config = {
        "issuer": issuer or f"http://127.0.0.1:{port}/application/o/{slug}", "port": port,
        "id_token_signing_alg": alg,
        "clients": [_client(client_id, client_secret, redirect_uri, post_logout_redirect_uris)],
        "scopes": ["openid", "profile", "email", "psu_profile"],
        "claims": {"profile": ["name", "given_name", "family_name", "preferred_username", "nickname"],
                   "email": ["email", "email_verified"], "psu_profile": PSU_PROFILE_CLAIMS},
        "accounts": accounts if accounts is not None else DEFAULT_PSU_ACCOUNTS,
        "iss_in_authorization_response": False, "pkce_required": False, "refresh_tokens": "offline_access",
        "end_session": True, "claims_in_id_token": True,
    }
    if alg != "HS256" or jwks:
        config["jwks"] = jwks or generate_rsa_jwks(alg)
    config["clients"][0]["token_endpoint_auth_method"] = overrides.pop("token_endpoint_auth_method",
                                                                       "client_secret_basic")
    config.update(overrides)
    return config


# --- Google ---------------------------------------------------------------------------------------

def google_account(sub: str = "109876543210987654321", *, email="somchai.jaidee@gmail.com",
                   given_name="Somchai", family_name="Jaidee", **extra) -> tuple[str, dict]:
    claims = {"email": email, "email_verified": True, "name": f"{given_name} {family_name}",
              "given_name": given_name, "family_name": family_name, "locale": "th",
              "picture": "https://lh3.googleusercontent.com/a/default-user=s96-c"}
    claims.update(extra)
    return sub, claims


DEFAULT_GOOGLE_ACCOUNTS = dict([google_account(), google_account(
    "100000000000000000042", email="somying.rakrian@gmail.com", given_name="Somying", family_name="Rakrian")])


def google_config(port: int, client_id: str, client_secret: str, redirect_uri: str | list[str],
                  accounts: dict | None = None, *, jwks: dict | None = None, issuer: str | None = None,
                  **overrides) -> dict:
    """Plain discovery-driven OIDC like Google: RS256, ``openid profile email``, profile claims in
    the ID token, ``iss`` in the callback, client_secret_basic or _post, no end session."""
    config = {
        "issuer": issuer or f"http://127.0.0.1:{port}", "port": port,
        "jwks": jwks or generate_rsa_jwks(), "id_token_signing_alg": "RS256",
        "clients": [_client(client_id, client_secret, redirect_uri)],
        "scopes": ["openid", "profile", "email"],
        "claims": {"profile": ["name", "given_name", "family_name", "picture", "locale"],
                   "email": ["email", "email_verified"]},
        "accounts": accounts if accounts is not None else DEFAULT_GOOGLE_ACCOUNTS,
        "iss_in_authorization_response": True, "pkce_required": False, "refresh_tokens": "offline_access",
        "end_session": False, "claims_in_id_token": True,
    }
    config["clients"][0]["token_endpoint_auth_method"] = overrides.pop("token_endpoint_auth_method",
                                                                       "client_secret_basic")
    config.update(overrides)
    return config


# --- the process ----------------------------------------------------------------------------------

class Upstream:
    """One ``node tests/peers/upstream.mjs`` process serving ``config`` (a dict from a preset)."""

    def __init__(self, config: dict, directory: Path | str):
        self.config = config
        self.directory = Path(directory)
        self.port = int(config["port"])
        self.issuer = config["issuer"].rstrip("/")
        self.base = f"http://127.0.0.1:{self.port}"  # where it listens (the issuer may be a proxy's)
        self.config_path = self.directory / f"upstream-{self.port}.json"
        self.log_path = self.directory / f"upstream-{self.port}.log"
        self.process: subprocess.Popen | None = None

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def jwks(self) -> dict | None:
        """The private JWKS the upstream signs with (tests own it)."""
        return self.config.get("jwks")

    def start(self, timeout: float = 30) -> Upstream:
        node = node_available()
        if not node:
            raise RuntimeError("Node.js with tests/peers/node_modules (cd tests/peers && npm ci) is needed")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(json.dumps(self.config, ensure_ascii=False, indent=1), encoding="utf-8")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen([node, str(SCRIPT), str(self.config_path)], cwd=PEERS,
                                        stdout=subprocess.PIPE, stderr=self._log)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            if line is None:
                break
            if line.startswith("{"):
                ready = json.loads(line)
                if ready.get("ready"):
                    self.issuer = ready["issuer"].rstrip("/")
                    return self
        self.stop()
        raise RuntimeError(f"upstream did not become ready:\n{self.log()}")

    def _read_stdout(self, lines: queue.Queue) -> None:
        for raw in self.process.stdout:
            lines.put(raw.decode("utf-8", "replace").strip())
        lines.put(None)

    def stop(self) -> None:
        terminate(self.process, getattr(self, "_log", None))
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- its pages --------------------------------------------------------------------------------------

def _form(html: str, page_url: str) -> tuple[str, dict] | None:
    match = re.search(r"<form\b([^>]*)>(.*?)</form>", html, re.S)
    if not match:
        return None
    attributes, body = match.groups()
    action = re.search(r'action="([^"]*)"', attributes)
    fields = {unescape(n): unescape(v) for n, v in re.findall(r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', body)}
    return urljoin(page_url, unescape(action.group(1)) if action else page_url), fields


def fill_upstream_page(page_html: str, page_url: str, login: str, password: str = "any",
                       logout: bool = True) -> tuple[str, dict] | None:
    """(action_url, form_fields) to POST for one of upstream.mjs's pages: the login form (signs in
    as ``login``, an account id), the consent form (allows), the logout confirmation (``logout``
    says whether to sign out). None if the page is none of these (e.g. an error page)."""
    found = _form(page_html, page_url)
    if not found:
        return None
    action, fields = found
    if fields.get("prompt") == "login":
        return action, {**fields, "login": login, "password": password}
    if fields.get("prompt") == "consent":
        return action, fields
    if 'id="op.logoutForm"' in page_html and "xsrf" in fields:
        return action, {**fields, **({"logout": "yes"} if logout else {})}
    return None
