"""No flow lives in a process: SQLite and MariaDB alike, a restart loses no pending login, and any
op-proxy process on the same database finishes a flow another one began."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, assert_error, authlib_client, verify_id_token

EVERY_DATABASE = pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
NONCE = "nonce-1"


def on(server, url: str) -> str:
    """The same URL, sent to another op-proxy process (as a load balancer might)."""
    parts = urlsplit(url)
    return parts._replace(netloc=urlsplit(server.base).netloc).geturl()


@EVERY_DATABASE
def test_a_person_signs_in_and_the_app_gets_verified_tokens(make_server):
    server = make_server()
    person = Person(server.issuer)
    app = authlib_client(server.issuer, "demo", "demo-secret", "http://127.0.0.1:5000/callback")
    verifier = "v" * 50
    url, _state = app.create_authorization_url(server.url("/authorize"), code_verifier=verifier, nonce=NONCE)
    arrival = person.sign_in(url)
    token = app.fetch_token(server.url("/token"), authorization_response=arrival.url, code_verifier=verifier)
    claims = verify_id_token(server.issuer, token["id_token"], "demo", nonce=NONCE)
    assert claims["name"] == "สมชาย ใจดี"
    refreshed = app.refresh_token(server.url("/token"))
    assert verify_id_token(server.issuer, refreshed["id_token"], "demo")["sub"] == claims["sub"]


@EVERY_DATABASE
def test_a_restart_in_the_middle_of_a_sign_in_loses_nothing(make_server):
    server = make_server()
    person = Person(server.issuer)
    app = App(server.issuer)
    password_page = person.visit(app.authorization_url())
    assert isinstance(password_page, Page) and password_page.has_password_form()

    server.restart()

    code = app.code_from(person.submit_password(password_page))
    server.restart()
    assert app.exchange(code).status_code == 200


@EVERY_DATABASE
def test_another_process_finishes_a_sign_in_the_first_one_began(make_server):
    first = make_server()
    second = make_server()  # same config: same issuer, database and keys; another port
    person = Person(first.issuer)
    app = App(first.issuer, scope="openid profile")
    password_page = person.visit(app.authorization_url(nonce=NONCE))

    # The load balancer sends the form submission to the second process.
    response = person.http.post(on(second, password_page.forms()[0]["action"]),
                                data={"username": "demo", "password": "demo"})
    assert response.status_code == 303
    arrival = Arrival(response.headers["location"])
    assert arrival.params["iss"] == first.issuer
    code = app.code_from(arrival)

    # ... and the token request to the first one again; tokens verify with either process's JWKS.
    token = app.through(first.base).exchange(code).json()
    assert verify_id_token(first.issuer, token["id_token"], "demo", nonce=NONCE)["name"] == "สมชาย ใจดี"
    second_keys = httpx.get(second.url("/jwks")).json()
    assert second_keys == httpx.get(first.url("/jwks")).json()

    # The SSO session is shared too: the second process signs the person into another app at once.
    url = App(first.issuer, "second-app", "http://127.0.0.1:5002/callback").authorization_url()
    assert person.http.get(on(second, url)).headers["location"].startswith("http://127.0.0.1:5002/callback?code=")


@EVERY_DATABASE
def test_two_processes_racing_to_redeem_one_code_issue_tokens_only_once(make_server):
    first = make_server()
    second = make_server()
    person = Person(first.issuer)
    app = App(first.issuer)
    code = app.code_for(person)

    answers = []
    start = threading.Barrier(2)

    def redeem(server):
        start.wait()
        answers.append(app.through(server.base).exchange(code))

    threads = [threading.Thread(target=redeem, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 400]
    assert_error(next(a for a in answers if a.status_code == 400), "invalid_grant")
