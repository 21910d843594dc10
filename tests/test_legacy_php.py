"""The old gateway's PHP apps (sso-authen) keep working through op-proxy with only the host name changed.

Two apps from examples/clients, each run by PHP's own web server (``php -S``):

- php-query-token: sso-authen's JWT flow. The login link sends the person to ``/public/login.php``;
  op-proxy sends them back to ``sso_callback.php?token=<HS256 JWT>``, which checks the token itself.
- php-session: sso-authen's "legacy mode". ``protected_page.php`` is the guide's Auth Guard, unchanged:
  it sends logged-out people to ``/sso-authen/public/login.php`` on its own host (a reverse proxy to
  op-proxy, played here by router.php), and op-proxy writes the PHP session it reads.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from tests.support.admin import post_form, signed_in_admin
from tests.support.peers import require_peer
from tests.support.person import Arrival, Page, Person
from tests.support.php import (
    PhpServer,
    clock_off_by,
    faketime_library,
    files_sessions,
    php_available,
    php_extension_loaded,
    redis_answers,
    redis_sessions,
    running_as_root,
    throwaway_os_user,
)
from tests.support.server import ROOT, default_clients, free_port

EXAMPLES = ROOT / "examples" / "clients"
WELCOME = "ยินดีต้อนรับ, สมชาย ใจดี"


@pytest.fixture(autouse=True)
def php_is_installed():
    require_peer("PHP", php_available(), "php is not installed (Debian: apt-get install php-cli php-redis)")


# --- a browser that goes back and forth between a PHP app and op-proxy ---------------------------

def browse(person: Person, url: str, max_steps: int = 20) -> Page:
    """Go to ``url`` as the person's browser would: follow redirects between the PHP app and
    op-proxy, signing in on op-proxy's pages when asked. Returns the page the person ends on."""
    for _ in range(max_steps):
        if person.on_issuer(url):
            result = person.sign_in(url)
            if isinstance(result, Page):
                return result  # one of op-proxy's own pages (an error, say)
            url = result.url
            continue
        response = person.http.get(url)
        if response.is_redirect:
            url = urljoin(url, response.headers["location"])
            continue
        page = Page(url, response.status_code, response.text)
        person.pages.append(page)
        return page
    raise AssertionError(f"more than {max_steps} redirects, last at {url}")


def link(page: Page, text: str) -> str:
    """The address of the link a person would click."""
    match = re.search(r'<a href="([^"]*)">' + re.escape(text) + "</a>", page.html)
    assert match, f"no link {text!r} on {page.url}:\n{page.html}"
    return urljoin(page.url, unescape(match.group(1)))


def php_session_cookie(person: Person) -> str | None:
    return next((c.value for c in person.http.cookies.jar if c.name == "PHPSESSID"), None)


# --- tokens made in the test, as a forger (or a careless gateway) would make them ----------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def craft_token(key: str, claims: dict, header: dict | None = None) -> str:
    signing_input = (b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode()) + "."
                     + b64url(json.dumps(claims, ensure_ascii=False).encode()))
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def claims_of(token: str) -> dict:
    return json.loads(unb64url(token.split(".")[1]))


def user_claims(client_id: str = "php-query-token", **overrides) -> dict:
    now = int(time.time())
    return {"iss": "http://127.0.0.1:8080", "aud": client_id, "iat": now, "nbf": now, "exp": now + 3600,
            "jti": secrets.token_hex(8),
            "data": {"name": "สมชาย ใจดี", "firstName": "สมชาย", "lastName": "ใจดี",
                     "email": "somchai.j@example.ac.th", "role": "subscriber"}, **overrides}


# --- the apps --------------------------------------------------------------------------------------

@dataclass
class QueryTokenApp:
    base: str
    key: str
    php: PhpServer
    op_proxy: object = None

    def callback(self, token: str | None) -> httpx.Response:
        query = "" if token is None else "?" + urlencode({"token": token})
        return httpx.get(self.base + "/sso_callback.php" + query, timeout=15)


def start_query_token_app(tmp_path, sso_base: str, key: str, port: int, env: dict | None = None) -> PhpServer:
    sessions = tmp_path / "php-sessions"
    sessions.mkdir(exist_ok=True)
    return PhpServer(EXAMPLES / "php-query-token", port, log_dir=tmp_path, ini=files_sessions(sessions), env={
        "SSO_BASE": sso_base, "JWT_SHARED_SECRET_KEY": key, "CLIENT_ID": "php-query-token", **(env or {})}).start()


@pytest.fixture
def callback_app(tmp_path):
    """The query-token app alone: its callback needs nobody else to judge a token."""
    port, key = free_port(), secrets.token_urlsafe(32)
    php = start_query_token_app(tmp_path, "http://127.0.0.1:9", key, port)
    yield QueryTokenApp(php.base, key, php)
    php.stop()


def query_token_app_with(make_server, tmp_path, key_kind: str, php_env: dict | None = None) -> QueryTokenApp:
    port, key, other_key = free_port(), secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    app = f"http://127.0.0.1:{port}"
    client = {"client_id": "php-query-token", "name": "แอป PHP", "mode": "query_token",
              "redirect_uris": [app + "/sso_callback.php"], "post_logout_redirect_uris": [app + "/"]}
    if key_kind == "per-client key":
        # A global key exists too, and must not be the one used for a client with its own.
        client.update(legacy_key_env="PHP_APP_JWT_KEY", legacy_token_lifetime=3600)
        env = {"PHP_APP_JWT_KEY": key, "JWT_SECRET_KEY": other_key}
    else:
        client.update(legacy_use_global_key=True, legacy_token_lifetime=3600)
        env = {"JWT_SECRET_KEY": key}
    op_proxy = make_server(clients=default_clients() + [client], env=env,
                           extra='[legacy]\nglobal_key_env = "JWT_SECRET_KEY"\n')
    php = start_query_token_app(tmp_path, op_proxy.issuer, key, port, php_env)
    return QueryTokenApp(app, key, php, op_proxy)


@pytest.fixture(params=["per-client key", "global key"])
def query_token_app(request, make_server, tmp_path):
    app = query_token_app_with(make_server, tmp_path, request.param)
    yield app
    app.php.stop()


@pytest.fixture
def per_client_app(make_server, tmp_path):
    app = query_token_app_with(make_server, tmp_path, "per-client key")
    yield app
    app.php.stop()


@dataclass
class SessionApp:
    base: str
    php: PhpServer
    op_proxy: object


def start_session_app(kind: str, make_server, tmp_path, neighbours=lambda app: [], env=None) -> SessionApp:
    """The PHP-session app, its sessions in files or Redis; ``neighbours(app_base)``: legacy
    clients registered before it (other old apps of the same organisation)."""
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    if kind == "redis":
        require_peer("PHP's redis extension", php_extension_loaded("redis"),
                     "not loadable (Debian: apt-get install php-redis)")
        require_peer("Redis", redis_answers(), "does not answer on 127.0.0.1:6379")
        ini = redis_sessions("tcp://127.0.0.1:6379")
    else:
        sessions = tmp_path / "php-sessions"
        sessions.mkdir()
        ini = files_sessions(sessions)
    op_proxy = make_server(clients=default_clients() + neighbours(app) + [{
        "client_id": "php-session", "name": "แอป PHP (session)", "mode": "php_session", "legacy_default": True,
        "redirect_uris": [app + "/protected_page.php"], "post_logout_redirect_uris": [app + "/"],
        "php_session": {**{k.removeprefix("session."): v for k, v in ini.items()},
                        "cookie_name": "PHPSESSID", "cookie_path": "/"},
    }], env=env)
    php = PhpServer(EXAMPLES / "php-session", port, env={"SSO_BASE": op_proxy.issuer}, ini=ini,
                    router=str(EXAMPLES / "php-session" / "router.php"), log_dir=tmp_path).start()
    return SessionApp(app, php, op_proxy)


@pytest.fixture(params=["files", "redis"])
def session_app(request, make_server, tmp_path):
    app = start_session_app(request.param, make_server, tmp_path)
    yield app
    app.php.stop()


def intranet_query_token_app(post_logout_uri: str) -> dict:
    """Another old app, in query-token mode, registered before the PHP-session app."""
    return {"client_id": "intranet", "name": "อินทราเน็ต", "mode": "query_token", "legacy_key_env": "INTRANET_KEY",
            "redirect_uris": ["http://127.0.0.1:5990/sso_callback.php"],
            "post_logout_redirect_uris": [post_logout_uri]}


@pytest.fixture(params=["files", "redis"])
def session_app_sharing_its_address(request, make_server, tmp_path):
    """Both old apps return people to the PHP-session app's home page after signing out."""
    app = start_session_app(request.param, make_server, tmp_path,
                            neighbours=lambda base: [intranet_query_token_app(base + "/")],
                            env={"INTRANET_KEY": secrets.token_urlsafe(32)})
    yield app
    app.php.stop()


@pytest.fixture
def session_app_beside_another(make_server, tmp_path):
    """The intranet app returns people to its own home page, not the PHP-session app's."""
    app = start_session_app("files", make_server, tmp_path,
                            neighbours=lambda base: [intranet_query_token_app("http://127.0.0.1:5990/")],
                            env={"INTRANET_KEY": secrets.token_urlsafe(32)})
    yield app
    app.php.stop()


# --- the query-token app -----------------------------------------------------------------------------

def test_a_person_signs_in_to_the_query_token_app_and_is_greeted_by_their_thai_name(query_token_app):
    app = query_token_app
    person = Person(app.op_proxy.issuer)
    redirects = []
    person.http.event_hooks = {"response": [redirects.append]}

    home = browse(person, app.base + "/")
    login = link(home, "เข้าสู่ระบบ")
    assert login.startswith(app.op_proxy.issuer + "/public/login.php?")
    assert parse_qs(urlsplit(login).query) == {"client_id": ["php-query-token"],
                                               "redirect_uri": [app.base + "/sso_callback.php"]}

    arrival = person.sign_in(login)
    assert isinstance(arrival, Arrival) and arrival.url.startswith(app.base + "/sso_callback.php?token="), \
        arrival
    handing_back = next(r for r in redirects if r.headers.get("location", "").startswith(arrival.url))
    assert handing_back.status_code == 303
    assert handing_back.headers.get("referrer-policy") == "no-referrer"  # the token stays out of Referer
    claims = claims_of(arrival.params["token"])
    assert claims["aud"] == "php-query-token" and claims["iss"] == app.op_proxy.issuer
    assert claims["exp"] - claims["iat"] == 3600
    assert {"name", "firstName", "lastName", "email"} <= set(claims["data"])

    home = browse(person, arrival.url)
    assert home.url == app.base + "/index.php"
    assert WELCOME in home.html
    assert "somchai.j@example.ac.th" in home.html
    assert "เข้าสู่ระบบ" not in home.html
    assert WELCOME in browse(person, app.base + "/protected_page.php").html


def test_a_token_from_op_proxy_changed_on_the_way_is_refused(per_client_app):
    app = per_client_app
    person = Person(app.op_proxy.issuer)
    arrival = person.sign_in(link(browse(person, app.base + "/"), "เข้าสู่ระบบ"))
    header, payload, signature = arrival.params["token"].split(".")
    claims = json.loads(unb64url(payload))
    claims["data"]["role"] = "admin"

    refused = app.callback(f"{header}.{b64url(json.dumps(claims).encode())}.{signature}")

    assert refused.status_code == 401
    assert "Authentication Failed: Signature verification failed" in refused.text


def test_op_proxy_refuses_to_send_a_person_to_an_unregistered_redirect_uri(per_client_app):
    app = per_client_app
    person = Person(app.op_proxy.issuer)
    redirects = []
    person.http.event_hooks = {"response": [redirects.append]}
    result = person.visit(app.op_proxy.issuer + "/public/login.php?" + urlencode({
        "client_id": "php-query-token", "redirect_uri": "https://attacker.example/sso_callback.php"}))

    assert isinstance(result, Page), f"op-proxy sent the person to {result.url}"
    assert result.status == 400
    assert not result.has_password_form()  # refused before anyone types a password
    assert not any("attacker.example" in r.headers.get("location", "") for r in redirects)


def test_signing_out_of_the_query_token_app_returns_to_it_signed_out_everywhere(per_client_app):
    app = per_client_app
    person = Person(app.op_proxy.issuer)
    login = link(browse(person, app.base + "/"), "เข้าสู่ระบบ")
    home = browse(person, login)
    assert WELCOME in home.html

    back = browse(person, link(home, "ออกจากระบบ"))

    assert back.url == app.base + "/" and back.status == 200
    assert "เข้าสู่ระบบ" in back.html and WELCOME not in back.html
    assert person.visit(login).has_password_form()  # op-proxy's session ended too


def test_op_proxy_refuses_to_send_a_signed_out_person_to_an_unregistered_address(per_client_app):
    app = per_client_app
    person = Person(app.op_proxy.issuer)
    result = person.visit(app.op_proxy.issuer + "/public/logout.php?" + urlencode({
        "post_logout_redirect_uri": "https://attacker.example/"}))

    assert isinstance(result, Page), f"op-proxy sent the person to {result.url}"
    assert result.status == 400


def test_an_app_whose_clock_is_a_little_behind_accepts_a_token_op_proxy_just_made(make_server, tmp_path):
    # The app checks tokens as firebase/php-jwt does out of the box (no leeway), on a server whose
    # clock is 5 seconds behind op-proxy's: a token made "now" is not valid yet by that clock.
    require_peer("libfaketime", bool(faketime_library()), "not installed (Debian: apt-get install faketime)")
    app = query_token_app_with(make_server, tmp_path, "per-client key", {"JWT_LEEWAY": "0", **clock_off_by(-5)})
    try:
        person = Person(app.op_proxy.issuer)
        arrival = person.sign_in(link(browse(person, app.base + "/"), "เข้าสู่ระบบ"))
        home = browse(person, arrival.url)
    finally:
        app.php.stop()

    assert home.url == app.base + "/index.php", home.html
    assert WELCOME in home.html
    claims = claims_of(arrival.params["token"])
    assert claims["nbf"] == claims["iat"] - 60  # RFC 7519 §4.1.5: a minute of leeway, no more
    assert claims["exp"] - claims["iat"] == 3600


def test_an_app_moved_unchanged_with_the_old_global_key_is_told_no_new_key(make_server, tmp_path):
    # The admin registers the old app from the command line, keeping the key it already holds.
    port, old_key = free_port(), secrets.token_urlsafe(32)
    app = f"http://127.0.0.1:{port}"
    op_proxy = make_server(env={"JWT_SECRET_KEY": old_key}, extra='[legacy]\nglobal_key_env = "JWT_SECRET_KEY"\n')

    def op_proxy_command(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(op_proxy.config_path), *args],
                              cwd=ROOT, capture_output=True, text=True, env={**os.environ, "JWT_SECRET_KEY": old_key})

    added = op_proxy_command("clients", "add", "php-query-token", "--mode", "query_token", "--global-legacy-key",
                             "--redirect-uri", app + "/sso_callback.php", "--post-logout-redirect-uri", app + "/")
    assert added.returncode == 0, added.stderr
    assert "key" in added.stdout and "global" in added.stdout
    assert not re.search(r"[A-Za-z0-9_-]{32,}", added.stdout), added.stdout  # no key nobody would use
    shown = json.loads(op_proxy_command("clients", "show", "php-query-token").stdout)
    assert shown["legacy_key"] == "the old gateway's global key ([legacy] global_key_env)"
    assert shown["token_endpoint_auth_method"] == "none"  # it never calls /token: no client secret either

    php = start_query_token_app(tmp_path, op_proxy.issuer, old_key, port)
    try:
        person = Person(op_proxy.issuer)
        home = browse(person, person.sign_in(link(browse(person, app + "/"), "เข้าสู่ระบบ")).url)
    finally:
        php.stop()
    assert WELCOME in home.html  # signed with the key the app already had

    own = op_proxy_command("clients", "add", "new-app", "--mode", "query_token", "--redirect-uri",
                           "http://127.0.0.1:5991/sso_callback.php")
    assert "HS256 key for ?token= (shown once" in own.stdout
    assert json.loads(op_proxy_command("clients", "show", "new-app").stdout)["legacy_key"].startswith("its own")


# --- the callback's own checks (PHP alone) --------------------------------------------------------

def test_the_callback_accepts_a_well_made_token(callback_app):
    person = Person("http://127.0.0.1:9")
    home = browse(person, callback_app.base + "/sso_callback.php?" + urlencode(
        {"token": craft_token(callback_app.key, user_claims())}))

    assert home.url == callback_app.base + "/index.php"
    assert WELCOME in home.html and "subscriber" in home.html


def tampered(key: str) -> str:
    header, _payload, signature = craft_token(key, user_claims()).split(".")
    claims = user_claims()
    claims["data"]["role"] = "admin"
    return f"{header}.{b64url(json.dumps(claims, ensure_ascii=False).encode())}.{signature}"


REFUSED_TOKENS = {
    "payload changed after signing": (tampered, "Signature verification failed"),
    "signed with another key": (lambda key: craft_token(secrets.token_urlsafe(32), user_claims()),
                                "Signature verification failed"),
    "expired": (lambda key: craft_token(key, user_claims(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                                                         exp=int(time.time()) - 3600)), "Expired token"),
    "for another app": (lambda key: craft_token(key, user_claims("another-app")), "Wrong audience"),
    "not valid yet": (lambda key: craft_token(key, user_claims(nbf=int(time.time()) + 3600)), "nbf"),
    "without an expiry": (lambda key: craft_token(key, {k: v for k, v in user_claims().items() if k != "exp"}),
                          "Expired token"),
    "unsigned (alg none)": (lambda key: craft_token(key, user_claims(), {"alg": "none"}).rsplit(".", 1)[0] + ".",
                            "Algorithm not allowed"),
    "signed with HS512": (lambda key: craft_token(key, user_claims(), {"alg": "HS512", "typ": "JWT"}),
                          "Algorithm not allowed"),
    "not a token": (lambda key: "not-a-jwt", "Wrong number of segments"),
    "missing": (lambda key: None, "no token"),
}


@pytest.mark.parametrize("kind", REFUSED_TOKENS)
def test_the_callback_refuses_a_token_it_cannot_trust(callback_app, kind):
    make, reason = REFUSED_TOKENS[kind]
    person = Person("http://127.0.0.1:9")
    token = make(callback_app.key)

    refused = person.http.get(callback_app.base + "/sso_callback.php"
                              + ("" if token is None else "?" + urlencode({"token": token})))

    assert refused.status_code == 401
    assert refused.text.startswith("Authentication Failed: ") and reason in refused.text
    home = browse(person, callback_app.base + "/")
    assert "เข้าสู่ระบบ" in home.html and "ยินดีต้อนรับ" not in home.html  # still signed out


# --- the PHP-session app -------------------------------------------------------------------------------

def test_the_unchanged_auth_guard_page_greets_a_person_signed_in_through_op_proxy(session_app):
    app = session_app
    person = Person(app.op_proxy.issuer)
    guard = person.http.get(app.base + "/protected_page.php")
    assert guard.status_code == 302 and guard.headers["location"] == "/sso-authen/public/login.php"

    page = browse(person, app.base + "/protected_page.php")

    assert page.url == app.base + "/protected_page.php" and page.status == 200
    assert page.html == WELCOME


def test_signing_in_gives_the_php_app_a_fresh_session_id(session_app):
    app = session_app
    person = Person(app.op_proxy.issuer)
    person.http.get(app.base + "/protected_page.php")  # PHP starts an (empty) session first
    planted = php_session_cookie(person)
    assert planted

    assert browse(person, app.base + "/protected_page.php").html == WELCOME
    assert php_session_cookie(person) != planted


def test_signing_out_of_the_php_session_app_destroys_its_session(session_app):
    app = session_app
    person = Person(app.op_proxy.issuer)
    assert browse(person, app.base + "/protected_page.php").html == WELCOME
    session_id = php_session_cookie(person)

    back = browse(person, link(browse(person, app.base + "/"), "ออกจากระบบ"))

    assert back.url == app.base + "/" and back.status == 200
    guard = person.http.get(app.base + "/protected_page.php")
    assert guard.status_code == 302 and guard.headers["location"] == "/sso-authen/public/login.php"
    # Not just forgotten by this browser: the session itself is gone (a copied cookie is worthless).
    replayed = httpx.get(app.base + "/protected_page.php", cookies={"PHPSESSID": session_id}, timeout=15)
    assert replayed.status_code == 302 and WELCOME not in replayed.text
    # And op-proxy asks for the password again.
    to_op_proxy = person.http.get(app.base + guard.headers["location"]).headers["location"]
    assert to_op_proxy == app.op_proxy.issuer + "/sso-authen/public/login.php"
    assert person.visit(to_op_proxy).has_password_form()


# --- PHP as the web server's own user (PHP-FPM as www-data), op-proxy as another -------------------

@pytest.fixture
def web_server_user():
    """The OS user PHP runs as in production (Debian: www-data): not op-proxy's user."""
    require_peer("root", running_as_root(), "running PHP as another OS user needs root, setpriv and useradd")
    with throwaway_os_user() as user:
        yield user


@pytest.fixture
def shared_save_path():
    """A session.save_path outside pytest's private tmp directory, which another user cannot enter."""
    directory = tempfile.mkdtemp(prefix="php-sessions-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def session_app_run_by(user, make_server, tmp_path, save_path: str, **file_settings) -> SessionApp:
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    ini = files_sessions(save_path)
    op_proxy = make_server(clients=default_clients() + [{
        "client_id": "php-session", "name": "แอป PHP (session)", "mode": "php_session", "legacy_default": True,
        "redirect_uris": [app + "/protected_page.php"], "post_logout_redirect_uris": [app + "/"],
        "php_session": {"save_handler": "files", "save_path": save_path, **file_settings},
    }])
    php = PhpServer(EXAMPLES / "php-session", port, env={"SSO_BASE": op_proxy.issuer}, ini=ini, user=user,
                    router=str(EXAMPLES / "php-session" / "router.php"), log_dir=tmp_path).start()
    return SessionApp(app, php, op_proxy)


def sign_in_and_sign_out_of(app: SessionApp, save_path: str) -> os.stat_result:
    person = Person(app.op_proxy.issuer)
    page = browse(person, app.base + "/protected_page.php")
    assert page.html == WELCOME, app.php.log()
    assert "Failed to read session data" not in app.php.log()
    written = os.stat(os.path.join(save_path, "sess_" + php_session_cookie(person)))

    back = browse(person, link(browse(person, app.base + "/"), "ออกจากระบบ"))
    assert back.url == app.base + "/"
    guard = person.http.get(app.base + "/protected_page.php")
    assert guard.status_code == 302 and guard.headers["location"] == "/sso-authen/public/login.php"
    return written


def test_php_running_as_the_web_servers_user_reads_the_session_op_proxy_wrote(web_server_user, shared_save_path,
                                                                              make_server, tmp_path):
    # The usual layout: the save directory belongs to PHP's group, and op-proxy's user is a member
    # (here op-proxy runs as root, PHP as www-data's stand-in). The guide asks for nothing more.
    os.chown(shared_save_path, 0, web_server_user.gid)
    os.chmod(shared_save_path, 0o770)
    app = session_app_run_by(web_server_user, make_server, tmp_path, shared_save_path)
    try:
        written = sign_in_and_sign_out_of(app, shared_save_path)
    finally:
        app.php.stop()

    assert written.st_gid == web_server_user.gid
    assert stat.S_IMODE(written.st_mode) == 0o660  # PHP's group reads and writes; nobody else reads


def test_an_admin_names_php_s_group_for_debian_s_shared_session_directory(web_server_user, shared_save_path,
                                                                          make_server, tmp_path):
    # Debian's /var/lib/php/sessions: root's, mode 1733 (anyone may create, nobody may list).
    # The session files must be in PHP's group, which the directory does not say: the admin names it.
    os.chown(shared_save_path, 0, 0)
    os.chmod(shared_save_path, 0o1733)
    app = session_app_run_by(web_server_user, make_server, tmp_path, shared_save_path,
                             file_group=web_server_user.name, file_mode="0660")
    try:
        written = sign_in_and_sign_out_of(app, shared_save_path)
    finally:
        app.php.stop()

    assert written.st_gid == web_server_user.gid and stat.S_IMODE(written.st_mode) == 0o660


# --- signing out of the old apps -------------------------------------------------------------------

def signed_in_to(app: SessionApp) -> Person:
    person = Person(app.op_proxy.issuer)
    assert browse(person, app.base + "/protected_page.php").html == WELCOME
    return person


def still_signed_in(person: Person, app: SessionApp) -> bool:
    """In the PHP app, and at op-proxy (another app of its asks for no password: prompt=none)."""
    silently = person.visit(app.op_proxy.issuer + "/authorize?" + urlencode({
        "client_id": "demo", "redirect_uri": "http://127.0.0.1:5000/callback", "response_type": "code",
        "scope": "openid", "state": "still-there", "prompt": "none"}))
    return (person.http.get(app.base + "/protected_page.php").text == WELCOME
            and isinstance(silently, Arrival) and "code" in silently.params)


def signed_out_everywhere(person: Person, app: SessionApp, session_id: str) -> bool:
    guard = person.http.get(app.base + "/protected_page.php")
    replayed = httpx.get(app.base + "/protected_page.php", cookies={"PHPSESSID": session_id}, timeout=15)
    asks_password = person.visit(app.op_proxy.issuer + "/sso-authen/public/login.php").has_password_form()
    return guard.status_code == 302 and replayed.status_code == 302 and asks_password


def test_signing_out_ends_the_php_session_even_when_another_old_app_shares_the_return_address(
        session_app_sharing_its_address):
    app = session_app_sharing_its_address
    person = signed_in_to(app)
    session_id = php_session_cookie(person)

    # The app's own link names no client, only the address, which the intranet app registered too.
    back = browse(person, link(browse(person, app.base + "/"), "ออกจากระบบ"))

    assert back.url == app.base + "/" and back.status == 200
    assert signed_out_everywhere(person, app, session_id)


def test_an_app_that_names_itself_returns_people_only_to_its_own_addresses(session_app_beside_another):
    app = session_app_beside_another
    person = signed_in_to(app)
    session_id = php_session_cookie(person)
    logout = app.op_proxy.issuer + "/sso-authen/public/logout.php?"

    # RP-Initiated Logout §3: the intranet's address is not the PHP-session app's to ask for.
    refused = person.visit(logout + urlencode({"client_id": "php-session",
                                               "post_logout_redirect_uri": "http://127.0.0.1:5990/"}))
    assert isinstance(refused, Page), f"op-proxy sent the person to {refused.url}"
    assert refused.status == 400
    assert still_signed_in(person, app)  # a refused request changes nothing

    back = person.visit(logout + urlencode({"client_id": "php-session", "post_logout_redirect_uri": app.base + "/"}))
    assert isinstance(back, Arrival) and back.url == app.base + "/"
    assert signed_out_everywhere(person, app, session_id)


def test_a_sign_out_link_on_another_site_asks_the_person_first(session_app):
    app = session_app
    person = signed_in_to(app)
    session_id = php_session_cookie(person)
    planted = app.op_proxy.issuer + "/sso-authen/public/logout.php"  # say, an <img> on a forum page

    asked = person.visit(planted)
    assert isinstance(asked, Page) and asked.status == 200
    assert still_signed_in(person, app)
    forged = person.visit(planted, method="POST", data={"csrf": "guessed"})  # a form on the forum, posted
    assert isinstance(forged, Page) and 'name="csrf"' in forged.html
    assert still_signed_in(person, app)

    done = person.submit(asked)  # the person meant it: "Sign out"
    assert isinstance(done, Page) and done.status == 200 and not done.forms()
    assert signed_out_everywhere(person, app, session_id)


def test_an_app_that_names_itself_without_an_address_signs_the_person_out_at_once(session_app):
    app = session_app
    person = signed_in_to(app)
    session_id = php_session_cookie(person)

    done = person.visit(app.op_proxy.issuer + "/public/logout.php?client_id=php-session")

    assert isinstance(done, Page) and done.status == 200 and not done.forms()
    assert signed_out_everywhere(person, app, session_id)


def test_an_admin_registers_the_php_app_in_the_panel_naming_php_s_group(web_server_user, shared_save_path,
                                                                        make_server, tmp_path):
    os.chown(shared_save_path, 0, 0)  # Debian's layout again: the directory does not name PHP's group
    os.chmod(shared_save_path, 0o1733)
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    op_proxy = make_server()
    admin = signed_in_admin(op_proxy)
    form = {"client_id": "php-panel", "name": "แอป PHP", "mode": "php_session", "subject_type": "public",
            "token_endpoint_auth_method": "none", "allowed_scopes": ["openid", "profile", "email"],
            "legacy_token_lifetime": "3600", "redirect_uris": app + "/protected_page.php",
            "post_logout_redirect_uris": app + "/", "php_save_handler": "files", "php_save_path": shared_save_path,
            "php_file_mode": "0660"}

    typo = post_form(admin, op_proxy.url("/admin/clients/new"), "/admin/clients/new",
                     **form, php_file_group=web_server_user.name + "x")
    assert typo.status_code == 400 and "file_group" in typo.text  # refused when saved, not at sign-in
    saved = post_form(admin, op_proxy.url("/admin/clients/new"), "/admin/clients/new",
                      **form, php_file_group=web_server_user.name)
    assert saved.status_code == 303, saved.text
    edit_form = admin.http.get(op_proxy.url("/admin/clients/php-panel")).text
    assert f'value="{web_server_user.name}"' in edit_form and 'value="0660"' in edit_form

    php = PhpServer(EXAMPLES / "php-session", port, env={"SSO_BASE": op_proxy.issuer}, ini=files_sessions(
        shared_save_path), user=web_server_user, router=str(EXAMPLES / "php-session" / "router.php"),
        log_dir=tmp_path).start()
    try:
        person = Person(op_proxy.issuer)
        arrival = person.sign_in(op_proxy.url("/public/login.php?client_id=php-panel"))
        assert arrival.url == app + "/protected_page.php"
        page = browse(person, arrival.url)
    finally:
        php.stop()
    assert page.html == WELCOME, php.log()
