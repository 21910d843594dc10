"""An admin's account is hard to guess into, and an admin looks after an application's secrets:
rotating any of them retires the old one at once, and a disabled application signs nobody in."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from html import unescape

import httpx
from sqlalchemy import select, update

from op_proxy.storage.models import Client
from tests.support.admin import (
    ADMIN_PASSWORD,
    create_admin,
    csrf_token,
    hidden_fields,
    post_form,
    signed_in_admin,
    try_password,
)
from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, verify_id_token
from tests.support.server import DEMO_PROFILE, ROOT
from tests.support.stored import changed, stored_values
from tests.support.user_handler import UserHandlerApp

PID = DEMO_PROFILE["pid"]
APP_REDIRECT = "http://127.0.0.1:5600/callback"
LEGACY_REDIRECT = "http://127.0.0.1:5601/sso_callback.php"


def shown_secrets(response: httpx.Response) -> dict[str, str]:
    """The secrets a page shows once, by their label."""
    assert response.status_code == 200, response.text
    found = re.findall(r'<div class="text-muted mb-1">([^<]+)</div>\s*<div[^>]*>\s*'
                       r'<code class="secret-value[^"]*"[^>]*>([^<]+)</code>', response.text)
    return {unescape(label): unescape(value) for label, value in found}


def shown_secret(response: httpx.Response) -> str:
    [secret] = shown_secrets(response).values()
    return secret


def client_authenticates(server, client_id: str, secret: str) -> bool:
    """Whether the token endpoint accepts these credentials (a made-up code is then the only problem)."""
    answer = httpx.post(server.url("/token"), auth=(client_id, secret),
                        data={"grant_type": "authorization_code", "code": "no-such-code", "redirect_uri": APP_REDIRECT})
    assert answer.status_code in (400, 401), answer.text
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def sign_in_to_app(server, client_id: str, secret: str, redirect_uri: str = APP_REDIRECT) -> dict:
    """The app's whole code flow (PKCE) with the demo person at the browser: its token response."""
    app = App(server.issuer, client_id, redirect_uri, secret=secret, scope="openid profile email")
    return app.sign_in(Person(server.issuer))


def register(admin: Person, server, **fields) -> httpx.Response:
    form = {"name": "แอปทดสอบ", "mode": "oidc", "token_endpoint_auth_method": "client_secret_basic",
            "subject_type": "public", "allowed_scopes": ["openid", "profile", "email"],
            "legacy_token_lifetime": "3600", **fields}
    return post_form(admin, server.url("/admin/clients/new"), "/admin/clients/new", **form)


def hs256_verifies(token: str, key: str) -> bool:
    header, payload, signature = token.split(".")
    expected = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return hmac.compare_digest(base64.urlsafe_b64encode(expected).rstrip(b"=").decode(), signature)


def message_of(page: httpx.Response) -> str:
    alert = re.search(r'<div class="alert alert-danger[^"]*"[^>]*>(.*?)</div>', page.text, re.S)
    return unescape(alert.group(1)).strip()


def test_guesses_sent_all_at_once_still_lock_the_account(make_server):
    """Twenty wrong passwords at the same moment, then the right one: the account is locked all the same."""
    server = make_server()
    create_admin(server, "racer")

    async def from_its_own_browser(password: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as browser:
            page = await browser.get("/admin/login")
            return await browser.post("/admin/login", data={
                "csrf_token": csrf_token(page.text), "username": "racer", "password": password})

    async def guess_together() -> list[httpx.Response]:
        return await asyncio.gather(*(from_its_own_browser(f"wrong guess {n}") for n in range(20)))

    answers = asyncio.run(guess_together())
    assert [answer.status_code for answer in answers] == [401] * 20
    right = try_password(httpx.Client(base_url=server.base, timeout=15), "racer", ADMIN_PASSWORD)
    assert right.status_code == 401, "the right password got in after twenty simultaneous wrong ones"


# -- the admin's own account -----------------------------------------------------------------------

def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(make_server):
    server = make_server()
    create_admin(server, "boss")
    create_admin(server, "deputy")
    guesser = httpx.Client(base_url=server.base, headers={"Accept-Language": "en"}, timeout=15)
    for attempt in range(5):
        wrong = try_password(guesser, "boss", f"guess number {attempt}")
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        assert "locked for 15 minutes" in wrong.text  # the rule is said up front, to everyone
        assert "op_admin" not in guesser.cookies

    locked = try_password(guesser, "boss", ADMIN_PASSWORD)
    assert locked.status_code == 401 and "op_admin" not in guesser.cookies

    # The lock is on that account only; an unknown name gets the very same answer as a locked one,
    # so nobody learns which names exist.
    assert try_password(guesser, "deputy", ADMIN_PASSWORD).status_code == 303
    unknown = try_password(httpx.Client(base_url=server.base, headers={"Accept-Language": "en"}, timeout=15),
                           "nobody", ADMIN_PASSWORD)
    assert unknown.status_code == 401
    assert message_of(unknown) == message_of(locked) == message_of(wrong)

    # Someone types a national ID as the name: the attempt is logged, the number is not.
    try_password(httpx.Client(base_url=server.base, timeout=15), PID, "whatever-it-is")
    server.stop()
    log = server.log()
    assert "reason=locked" in log and log.count("reason=wrong_password") >= 6
    assert PID not in log and PID[-4:] in log


def test_a_sign_in_name_with_a_line_break_cannot_forge_a_line_of_the_log(make_server):
    server = make_server()
    forged = "nobody\naudit event=admin_sign_in outcome=success admin=boss"
    assert try_password(httpx.Client(base_url=server.base, timeout=15), forged, "whatever-it-is").status_code == 401
    server.stop()
    audit_lines = [line for line in server.log().splitlines() if "audit event=" in line]
    assert len(audit_lines) == 1 and "event=admin_sign_in outcome=failure" in audit_lines[0]
    assert 'admin="nobody\\naudit event=admin_sign_in outcome=success admin=boss"' in audit_lines[0]


def test_an_app_id_that_cannot_travel_in_a_url_is_refused(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    for bad in ("a/b", "a b", "x?saved=1", "line\r\nbreak"):
        refused = register(admin, server, client_id=bad, redirect_uris=APP_REDIRECT)
        assert refused.status_code == 400 and "Client ID: letters, digits" in unescape(refused.text), bad
    assert shown_secret(register(admin, server, client_id="hr.portal@psu:v2", redirect_uris=APP_REDIRECT))


def test_the_panel_cookie_is_http_only_same_site_and_secure_outside_dev(make_server):
    plain_http = make_server()
    create_admin(plain_http, "boss")
    cookie = try_password(httpx.Client(base_url=plain_http.base, timeout=15), "boss", ADMIN_PASSWORD) \
        .headers["set-cookie"]
    assert cookie.startswith("op_admin=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # the dev issuer is http://, where a Secure cookie would never come back
    plain_http.stop()

    behind_tls = make_server(env={"OP_PROXY_SERVER_SECURE_COOKIES": "true"})
    create_admin(behind_tls, "boss2")
    # A browser keeps a Secure cookie for https only; this test speaks http, so it carries it back itself.
    login = httpx.get(behind_tls.url("/admin/login"))
    login_cookie = login.headers["set-cookie"]
    assert login_cookie.startswith("op_admin_login=") and "Secure" in login_cookie
    answer = httpx.post(behind_tls.url("/admin/login"), headers={"Cookie": login_cookie.split(";")[0]},
                        data={"csrf_token": csrf_token(login.text), "username": "boss2", "password": ADMIN_PASSWORD})
    cookie = answer.headers["set-cookie"]
    assert answer.status_code == 303 and cookie.startswith("op_admin=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_every_panel_page_forbids_inline_script_and_is_never_cached(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    for path in ("/admin/", "/admin/clients", "/admin/clients/new", "/admin/clients/demo", "/admin/upstreams",
                 "/admin/keys", "/admin/users", "/admin/audit", "/admin/login"):
        page = admin.http.get(server.url(path))
        assert page.status_code == 200, path
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path
        assert "form-action 'self'" in policy, path  # a planted form cannot post the panel's data elsewhere
        assert page.headers["cache-control"] == "no-store", path
        inline_scripts = [tag for tag in re.findall(r"<script\b[^>]*>", page.text) if "src=" not in tag]
        assert inline_scripts == [], path


# -- an application's secrets ----------------------------------------------------------------------

def test_rotating_the_client_secret_retires_the_old_one_at_once(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    first = shown_secret(register(admin, server, client_id="payroll", redirect_uris=APP_REDIRECT))
    assert client_authenticates(server, "payroll", first)

    page = admin.http.get(server.url("/admin/clients/payroll")).text
    rotate = {"csrf_token": csrf_token(page), **hidden_fields(page, "/admin/clients/payroll/rotate/secret")}
    second = shown_secret(admin.http.post(server.url("/admin/clients/payroll/rotate/secret"), data=rotate))
    assert second != first
    assert client_authenticates(server, "payroll", second)
    assert not client_authenticates(server, "payroll", first)

    # The same form sent again (a reload of the answer, the back button) rotates nothing.
    again = admin.http.post(server.url("/admin/clients/payroll/rotate/secret"), data=rotate)
    assert again.status_code == 409 and "Nothing was rotated" in again.text and "secret-value" not in again.text
    assert client_authenticates(server, "payroll", second)
    # Shown once: the application's page never shows it again.
    assert second not in admin.http.get(server.url("/admin/clients/payroll")).text


def test_rotating_the_legacy_key_signs_the_next_token_with_the_new_key_only(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    old_key = shown_secret(register(admin, server, client_id="old-php", mode="query_token",
                                    token_endpoint_auth_method="none", redirect_uris=LEGACY_REDIRECT))
    new_key = shown_secret(post_form(admin, server.url("/admin/clients/old-php"),
                                     "/admin/clients/old-php/rotate/legacy-key"))
    assert new_key != old_key

    person = Person(server.issuer)
    arrival = person.sign_in(server.url("/public/login.php") + f"?client_id=old-php&redirect_uri={LEGACY_REDIRECT}")
    assert isinstance(arrival, Arrival) and arrival.url.startswith(LEGACY_REDIRECT + "?token=")
    token = arrival.params["token"]
    assert hs256_verifies(token, new_key) and not hs256_verifies(token, old_key)


def stored_api_secret(database_url: str, client_id: str) -> str:
    [secret] = stored_values(database_url, select(Client.user_handler_secret).where(Client.client_id == client_id))
    return secret


def test_a_new_app_with_a_user_handler_gets_both_secrets_and_rotation_reaches_the_handler(make_server, database_url):
    api = UserHandlerApp()
    try:
        server = make_server()
        admin = signed_in_admin(server)
        shown = shown_secrets(register(admin, server, client_id="hr", redirect_uris=APP_REDIRECT,
                                       user_handler_endpoint=api.url))
        assert set(shown) == {"Client secret", "User handler API secret (X-API-SECRET)"}
        secret, first_api_secret = shown["Client secret"], shown["User handler API secret (X-API-SECRET)"]
        # op-proxy must send it on, so it cannot be hashed; it is kept encrypted with the data key.
        assert first_api_secret not in stored_api_secret(database_url, "hr")

        # The app was given the first API secret; the admin then rotates it and gives the app the new one.
        api.api_secret = shown_secret(post_form(admin, server.url("/admin/clients/hr"),
                                            "/admin/clients/hr/rotate/api-secret"))
        assert api.api_secret != first_api_secret

        token = sign_in_to_app(server, "hr", secret)
        assert verify_id_token(server.issuer, token["id_token"], "hr")["role"] == "editor"
        assert api.secrets_sent == [api.api_secret]
        assert api.api_secret not in stored_api_secret(database_url, "hr")
    finally:
        api.stop()


def test_an_api_secret_an_older_op_proxy_stored_in_clear_is_sealed_at_the_next_start(make_server, database_url):
    api = UserHandlerApp()
    try:
        server = make_server()
        admin = signed_in_admin(server)
        secret = shown_secrets(register(admin, server, client_id="hr", redirect_uris=APP_REDIRECT,
                                        user_handler_endpoint=api.url))["Client secret"]
        server.stop()
        api.api_secret = "written-by-op-proxy-before-0009"
        assert changed(database_url, update(Client).where(Client.client_id == "hr")
                       .values(user_handler_secret=api.api_secret)) == 1
        server.start()
        assert stored_api_secret(database_url, "hr") != api.api_secret

        token = sign_in_to_app(server, "hr", secret)
        assert verify_id_token(server.issuer, token["id_token"], "hr")["role"] == "editor"
        assert api.secrets_sent == [api.api_secret]
    finally:
        api.stop()


def test_adding_a_user_handler_to_an_app_shows_its_new_api_secret_once(make_server):
    api = UserHandlerApp()
    try:
        server = make_server()
        admin = signed_in_admin(server)
        secret = shown_secret(register(admin, server, client_id="library", redirect_uris=APP_REDIRECT))
        edited = post_form(admin, server.url("/admin/clients/library"), "/admin/clients/library",
                           name="ห้องสมุด", mode="oidc", token_endpoint_auth_method="client_secret_basic",
                           subject_type="public", allowed_scopes=["openid", "profile"], redirect_uris=APP_REDIRECT,
                           legacy_token_lifetime="3600", user_handler_endpoint=api.url)
        api.api_secret = shown_secrets(edited)["User handler API secret (X-API-SECRET)"]

        token = sign_in_to_app(server, "library", secret)
        assert verify_id_token(server.issuer, token["id_token"], "library")["role"] == "editor"
    finally:
        api.stop()


def test_a_disabled_application_signs_nobody_in_until_it_is_enabled_again(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    secret = shown_secret(register(admin, server, client_id="intranet", redirect_uris=APP_REDIRECT))
    app = App(server.issuer, "intranet", APP_REDIRECT, secret=secret, scope="openid profile email")
    url = app.authorization_url()

    post_form(admin, server.url("/admin/clients/intranet"), "/admin/clients/intranet/enabled", enabled="0")
    refused = Person(server.issuer).visit(url)
    assert isinstance(refused, Page) and refused.status == 400  # an error page, never a redirect
    assert not client_authenticates(server, "intranet", secret)

    post_form(admin, server.url("/admin/clients/intranet"), "/admin/clients/intranet/enabled", enabled="1")
    app.code_from(Person(server.issuer).sign_in(url))


# -- an application's token lifetimes --------------------------------------------------------------

def claims_of(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_an_app_given_shorter_token_lifetimes_gets_tokens_that_expire_sooner(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    secret = shown_secret(register(admin, server, client_id="kiosk", redirect_uris=APP_REDIRECT,
                                   access_token_lifetime="300", id_token_lifetime="600",
                                   refresh_token_lifetime="3600"))
    form = admin.http.get(server.url("/admin/clients/kiosk")).text
    assert 'name="access_token_lifetime" type="number" min="1" max="900" value="300"' in form

    token = sign_in_to_app(server, "kiosk", secret)
    assert token["expires_in"] == 300
    access, identity = claims_of(token["access_token"]), verify_id_token(server.issuer, token["id_token"], "kiosk")
    assert access["exp"] - access["iat"] == 300 and identity["exp"] - identity["iat"] == 600
    refresh = httpx.post(server.url("/introspect"), auth=("kiosk", secret),
                         data={"token": token["refresh_token"], "token_type_hint": "refresh_token"}).json()
    assert refresh["active"] and refresh["exp"] - refresh["iat"] == 3600

    # The demo app, with no lifetimes of its own, keeps the server's.
    assert sign_in_to_app(server, "demo", "demo-secret", "http://127.0.0.1:5000/callback")["expires_in"] == 900


def test_a_lifetime_longer_than_the_server_s_is_refused_and_nothing_typed_is_lost(make_server):
    server = make_server()
    admin = signed_in_admin(server)
    refused = register(admin, server, client_id="forever", redirect_uris=APP_REDIRECT,
                       access_token_lifetime="86400")
    assert refused.status_code == 400
    assert "Access token lifetime: at most 900 seconds" in unescape(refused.text)
    assert 'value="forever"' in refused.text and 'value="86400"' in refused.text
    assert admin.http.get(server.url("/admin/clients/forever")).status_code == 404


def run_cli(server, *args) -> str:
    command = [sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), "admins", *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env={k: v for k, v in os.environ.items() if not k.startswith("OP_PROXY_")})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_an_operator_unlocks_lists_and_removes_admins_from_the_command_line(make_server):
    server = make_server()
    create_admin(server, "boss")
    create_admin(server, "deputy", role="viewer")
    for attempt in range(5):
        try_password(httpx.Client(base_url=server.base, timeout=15), "boss", f"guess {attempt}")
    assert "boss\tadmin locked" in run_cli(server, "list")

    run_cli(server, "unlock", "boss")
    assert try_password(httpx.Client(base_url=server.base, timeout=15), "boss", ADMIN_PASSWORD).status_code == 303
    listed = run_cli(server, "list")
    assert "boss\tadmin\tboss\t" in listed and "deputy\tviewer\tdeputy\tnever signed in" in listed

    deputy = httpx.Client(base_url=server.base, timeout=15)
    assert try_password(deputy, "deputy", ADMIN_PASSWORD).status_code == 303
    assert deputy.get("/admin/").status_code == 200
    run_cli(server, "remove", "deputy")
    assert deputy.get("/admin/").status_code == 303  # the open session ended with the account
    assert "deputy" not in run_cli(server, "list")
