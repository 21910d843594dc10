"""When the database goes away under a running op-proxy (MariaDB restarting, the network to it cut):
applications get ``503 temporarily_unavailable`` as JSON they can act on, people get a page in their
language saying to try again in a minute, nothing is changed, and when the database is back every
token works again. Never the framework's English 500 page, never a traceback with SQL in the log."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import MARIADB_HOST, MARIADB_PORT, MariaDbDatabase
from tests.support.person import Page, Person
from tests.support.relay import DatabaseLink
from tests.support.rp import assert_error, authlib_client

CALLBACK = "http://127.0.0.1:5000/callback"


@pytest.fixture
def database_link():
    link = DatabaseLink(MARIADB_HOST, MARIADB_PORT).start()
    yield link
    link.cut()


@pytest.fixture
def database_url(database_link):
    """A fresh MariaDB database, reached through a link the test can cut."""
    database = MariaDbDatabase()
    yield make_url(database.url).set(host="127.0.0.1", port=database_link.port) \
        .render_as_string(hide_password=False)
    database.drop()


def signed_in_app(server):
    app = authlib_client(server.issuer, "demo", "demo-secret", CALLBACK, scope="openid profile")
    url, _ = app.create_authorization_url(server.url("/authorize"), code_verifier="d" * 43)
    person = Person(server.issuer)
    try:
        arrival = person.sign_in(url)
    finally:
        person.close()
    app.fetch_token(server.url("/token"), authorization_response=arrival.url, code_verifier="d" * 43)
    return app


def assert_temporarily_unavailable(response: httpx.Response) -> None:
    assert_error(response, "temporarily_unavailable", status=503)
    assert int(response.headers["Retry-After"]) > 0


def test_while_the_database_is_unreachable_apps_get_503_json_and_people_a_page_in_their_language(
        make_server, database_link):
    server = make_server()
    app = signed_in_app(server)
    tokens = dict(app.token)

    database_link.cut()  # MariaDB goes away: open connections reset, new ones refused

    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    assert_temporarily_unavailable(httpx.post(server.url("/token"), data=refresh, auth=("demo", "demo-secret")))
    assert_temporarily_unavailable(httpx.get(server.url("/userinfo"),
                                             headers={"Authorization": f"Bearer {tokens['access_token']}"}))
    # A single-page app's browser asks too (its Origin makes op-proxy look up the registered origins).
    spa = httpx.get(server.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}",
                                                      "Origin": "http://127.0.0.1:5173"})
    assert_temporarily_unavailable(spa)
    for endpoint in ("/introspect", "/revoke"):
        assert_temporarily_unavailable(httpx.post(server.url(endpoint), data={"token": tokens["access_token"]},
                                                  auth=("demo", "demo-secret")))

    # A person clicking "sign in" on the app meanwhile: our page, in their language, not a bare 500.
    for language, title in (("th", "ใช้งานไม่ได้ชั่วคราว"), ("en", "Temporarily unavailable")):
        someone = Person(server.issuer, accept_language=language)
        page = someone.visit(app.create_authorization_url(server.url("/authorize"), code_verifier="e" * 43)[0])
        someone.close()
        assert isinstance(page, Page) and page.status == 503 and page.title == title, page

    log = server.log()
    assert "Traceback" not in log and "database unavailable" in log
    assert tokens["refresh_token"] not in log and tokens["access_token"] not in log

    database_link.start()  # back: nothing was changed or revoked while it was away

    response = httpx.post(server.url("/token"), data=refresh, auth=("demo", "demo-secret"))
    assert response.status_code == 200, response.text
    profile = httpx.get(server.url("/userinfo"), headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert profile.status_code == 200 and profile.json()["name"] == "สมชาย ใจดี"
