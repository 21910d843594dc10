"""The example applications in examples/clients sign people in through op-proxy."""

from __future__ import annotations

import re
import sys
from urllib.parse import urljoin

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests.support.browser import Camera, launch
from tests.support.examples import EXAMPLES, ExampleApp, npm_ci
from tests.support.person import Arrival, Person
from tests.support.rp import App, authlib_client, discovery
from tests.support.server import DEMO_SECRET_HASH, default_clients, free_port


@pytest.fixture
def flask_example(make_server, tmp_path):
    port = free_port()
    op_proxy = make_server(clients=default_clients() + [{
        "client_id": "flask-example", "name": "ตัวอย่าง Flask", "client_secret_hash": DEMO_SECRET_HASH,
        "redirect_uris": [f"http://localhost:{port}/auth"],
        "post_logout_redirect_uris": [f"http://127.0.0.1:{port}/"],
    }])
    app = ExampleApp([sys.executable, "-m", "flask", "--app", "app", "run", "--port", str(port)],
                     EXAMPLES / "flask-authlib", f"http://localhost:{port}", {
                         "OP_PROXY_ISSUER": op_proxy.issuer, "CLIENT_ID": "flask-example",
                         "CLIENT_SECRET": "demo-secret", "REDIRECT_URI": f"http://localhost:{port}/auth",
                         "POST_LOGOUT_REDIRECT_URI": f"http://127.0.0.1:{port}/"}, tmp_path / "flask.log")
    yield op_proxy, app.base
    app.stop()


def sign_in_link(page: httpx.Response) -> str:
    """Where the page's "Sign in" link goes, as the person's browser would resolve it."""
    href = re.search(r'<a href="([^"]*)">[^<]*Sign in</a>', page.text)
    assert href, page.text
    return urljoin(str(page.url), href.group(1))


def through_the_app(person: Person, url: str) -> str:
    """Follow the app's redirects from ``url`` until they leave for op-proxy; that address."""
    for _ in range(5):
        response = person.http.get(url)
        assert response.is_redirect, response.text
        url = urljoin(url, response.headers["location"])
        if person.on_issuer(url):
            return url
    raise AssertionError("the app never sent the person to op-proxy")


def test_the_flask_authlib_example_signs_in_signs_out_and_signs_in_again(flask_example):
    """The registered URIs are conf/dev.toml's: sign-in returns to http://localhost:PORT/auth, sign-out
    to http://127.0.0.1:PORT/, another host; "Sign in" there must still send the registered one."""
    op_proxy, app = flask_example
    person = Person(op_proxy.issuer)
    arrival = person.sign_in(through_the_app(person, sign_in_link(person.http.get(app + "/"))))

    assert isinstance(arrival, Arrival) and arrival.url.startswith(app + "/auth?code=")
    home = person.http.get(arrival.url, follow_redirects=True)
    assert "สวัสดี สมชาย ใจดี" in home.text
    assert "ภาควิชาวิศวกรรมคอมพิวเตอร์" in home.text  # the org scope's department

    signed_out = person.http.get(app + "/logout")
    end_session = signed_out.headers["location"]
    assert end_session.startswith(op_proxy.issuer + "/logout?")
    back = person.visit(end_session)
    assert isinstance(back, Arrival) and back.url == app.replace("localhost", "127.0.0.1") + "/"

    landing = person.http.get(back.url, follow_redirects=True)
    pages_before = len(person.pages)
    again = person.sign_in(through_the_app(person, sign_in_link(landing)))

    assert isinstance(again, Arrival) and again.url.startswith(app + "/auth?code="), again
    # op-proxy's session had ended, so the password is asked again.
    assert any(page.has_password_form() for page in person.pages[pages_before:])
    assert "สวัสดี สมชาย ใจดี" in person.http.get(again.url, follow_redirects=True).text


# -- node-express: Express + openid-client 6 ----------------------------------------------------------

@pytest.fixture
def express_example(make_server, tmp_path):
    folder = EXAMPLES / "node-express"
    npm_ci(folder)
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    op_proxy = make_server(clients=default_clients() + [{
        "client_id": "express-example", "name": "ตัวอย่าง Express", "client_secret_hash": DEMO_SECRET_HASH,
        "redirect_uris": [app_url + "/callback"], "post_logout_redirect_uris": [app_url + "/"],
    }])
    app = ExampleApp(["node", "app.mjs"], folder, app_url, {
        "OP_PROXY_ISSUER": op_proxy.issuer, "CLIENT_ID": "express-example", "CLIENT_SECRET": "demo-secret",
        "PORT": str(port)}, tmp_path / "express.log")
    yield op_proxy, app
    app.stop()


def test_the_express_example_signs_in_refreshes_and_signs_out_at_op_proxy(express_example):
    op_proxy, app = express_example
    person = Person(op_proxy.issuer)
    typed_localhost = person.http.get(app.base.replace("127.0.0.1", "localhost") + "/login")
    assert typed_localhost.headers["location"] == app.base + "/login"  # the host its cookie and URIs are on
    to_op_proxy = person.http.get(app.base + "/login").headers["location"]
    assert to_op_proxy.startswith(op_proxy.issuer + "/authorize?")
    assert "code_challenge_method=S256" in to_op_proxy

    arrival = person.sign_in(to_op_proxy)

    assert isinstance(arrival, Arrival) and arrival.url.startswith(app.base + "/callback?code=")
    assert "iss=" in arrival.url  # RFC 9207: openid-client requires it, since discovery announces it
    home = person.http.get(arrival.url, follow_redirects=True)
    assert "สวัสดี สมชาย ใจดี" in home.text and "somchai.j@example.ac.th" in home.text, app.log()
    assert "refreshed 0 time(s)" in home.text

    refreshed = person.http.post(app.base + "/refresh", follow_redirects=True)
    assert "สวัสดี สมชาย ใจดี" in refreshed.text and "refreshed 1 time(s)" in refreshed.text, app.log()

    end_session = person.http.post(app.base + "/logout").headers["location"]
    assert end_session.startswith(op_proxy.issuer + "/logout?")
    back = person.visit(end_session)
    assert isinstance(back, Arrival) and back.url == app.base + "/"
    assert "Sign in" in person.http.get(back.url).text
    # op-proxy's session ended too: signing in again asks for the password.
    again = person.visit(person.http.get(app.base + "/login").headers["location"])
    assert not isinstance(again, Arrival) and again.has_password_form()


# -- spa: oidc-client-ts in a browser, public client ---------------------------------------------------

@pytest.fixture
def spa_example(make_server, tmp_path):
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    op_proxy = make_server(clients=default_clients() + [{
        "client_id": "spa-example", "name": "ตัวอย่างแอปหน้าเดียว", "token_endpoint_auth_method": "none",
        "redirect_uris": [app_url + "/callback"], "post_logout_redirect_uris": [app_url + "/"],
        # oidc-client-ts renews a minute before expiry: a 62-second token is renewed soon after sign-in.
        "access_token_lifetime": 62,
    }])
    app = ExampleApp([sys.executable, "serve.py"], EXAMPLES / "spa", app_url, {
        "OP_PROXY_ISSUER": op_proxy.issuer, "CLIENT_ID": "spa-example", "PORT": str(port)}, tmp_path / "spa.log")
    yield op_proxy, app
    app.stop()


async def test_the_spa_example_signs_in_renews_silently_and_signs_out_in_chromium(spa_example, request):
    op_proxy, app = spa_example
    camera = Camera(request.node.name)
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        page = await (await browser.new_context(locale="th-TH")).new_page()
        try:
            await page.goto(app.base + "/")
            await page.get_by_role("button", name="เข้าสู่ระบบ / Sign in").click()

            await expect(page).to_have_url(re.compile("^" + re.escape(op_proxy.issuer) + "/"))
            await page.get_by_label("ชื่อผู้ใช้").fill("demo")
            await page.get_by_label("รหัสผ่าน", exact=True).fill("demo")
            await camera.shot(page, "op-proxy-sign-in")
            await page.get_by_role("button", name="เข้าสู่ระบบ", exact=True).click()

            await expect(page.get_by_role("heading", name="สวัสดี สมชาย ใจดี")).to_be_visible()
            await expect(page).to_have_url(app.base + "/")
            await expect(page.locator("#email")).to_have_text("somchai.j@example.ac.th")  # from userinfo
            await camera.shot(page, "signed-in")

            # The renewal is the refresh token grant, a fetch from this page: the person sees nothing.
            await expect(page.locator("#renewals")).to_have_text("renewed 1 time(s)", timeout=30_000)
            await expect(page.get_by_role("heading", name="สวัสดี สมชาย ใจดี")).to_be_visible()

            await page.get_by_role("button", name="ออกจากระบบ / Sign out").click()
            await expect(page).to_have_url(app.base + "/")
            await expect(page.get_by_role("button", name="เข้าสู่ระบบ / Sign in")).to_be_visible()
            await camera.shot(page, "signed-out")
        finally:
            await browser.close()

    assert "client=spa-example" in op_proxy.log() and "grant_type=refresh_token" in op_proxy.log()
    assert "token_type=refresh_token" in op_proxy.log()  # revoked at sign-out
    # op-proxy ended its session: signing in again asks for the password.
    person = Person(op_proxy.issuer)
    metadata = discovery(op_proxy.issuer)
    spa = authlib_client(op_proxy.issuer, "spa-example", None, app.base + "/callback", auth_method="none")
    url, _ = spa.create_authorization_url(metadata["authorization_endpoint"], code_verifier="s" * 43)
    assert person.visit(url).has_password_form()


# -- resource-server: an API checking op-proxy's access tokens ----------------------------------------

@pytest.fixture
def resource_server_example(make_server, tmp_path):
    op_proxy = make_server(clients=default_clients() + [
        {"client_id": app_id, "name": app_id, "client_secret_hash": DEMO_SECRET_HASH,
         "redirect_uris": [f"http://127.0.0.1:{port}/callback"]}
        for app_id, port in (("course-app", 5600), ("other-app", 5601))])
    port = free_port()
    api = ExampleApp([sys.executable, "-m", "flask", "--app", "api", "run", "--port", str(port)],
                     EXAMPLES / "resource-server", f"http://127.0.0.1:{port}", {
                         "OP_PROXY_ISSUER": op_proxy.issuer, "AUDIENCES": "course-app", "REQUIRED_SCOPE": "email",
                         "INTROSPECTION_CLIENT_ID": "course-app", "INTROSPECTION_CLIENT_SECRET": "demo-secret"},
                     tmp_path / "api.log")
    yield op_proxy, api
    api.stop()


def tokens_for(person: Person, app_id: str, port: int, scope: str) -> dict:
    """The app signs the person in (code + PKCE) and receives its tokens."""
    return App(person.issuer, app_id, f"http://127.0.0.1:{port}/callback", scope=scope).sign_in(person)


def test_the_resource_server_example_takes_access_tokens_only_with_its_scope_and_audience(resource_server_example):
    op_proxy, api = resource_server_example
    person = Person(op_proxy.issuer)
    tokens = tokens_for(person, "course-app", 5600, "openid profile email")
    without_email = tokens_for(person, "course-app", 5600, "openid profile")
    for_another_app = tokens_for(person, "other-app", 5601, "openid profile email")

    def call(path: str, token: str) -> httpx.Response:
        return httpx.get(api.base + path, headers={"Authorization": f"Bearer {token}"})

    for path in ("/api/me", "/api/me/introspected"):  # the local check and introspection agree
        accepted = call(path, tokens["access_token"])
        assert accepted.status_code == 200, (path, accepted.text, api.log())
        assert accepted.json()["client_id"] == "course-app" and "email" in accepted.json()["scope"].split()

        # Same issuer, same aud (course-app), same key, not expired: only typ tells them apart.
        id_token = call(path, tokens["id_token"])
        assert id_token.status_code == 401 and 'error="invalid_token"' in id_token.headers["www-authenticate"]

        no_scope = call(path, without_email["access_token"])
        assert no_scope.status_code == 403
        assert 'error="insufficient_scope"' in no_scope.headers["www-authenticate"]
        assert 'scope="email"' in no_scope.headers["www-authenticate"]

        elsewhere = call(path, for_another_app["access_token"])
        assert elsewhere.status_code == 401, (path, elsewhere.text)

        assert call(path, "not-a-token").status_code == 401
        no_token = httpx.get(api.base + path)
        assert no_token.status_code == 401 and no_token.headers["www-authenticate"] == "Bearer"
