"""No flow lives in a process: SQLite and MariaDB alike, a restart loses no pending login, and any
op-proxy process on the same database finishes a flow another one began."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.person import Arrival, Page, Person
from tests.support.rp import authlib_client, verify_id_token

EVERY_DATABASE = pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
VERIFIER = "v" * 50


def authorization_url(issuer: str, client_id: str = "demo", redirect_uri: str = "http://127.0.0.1:5000/callback"):
    app = authlib_client(issuer, client_id, "demo-secret", redirect_uri)
    url, state = app.create_authorization_url(issuer + "/authorize", code_verifier=VERIFIER, nonce="nonce-1")
    return app, url, state


def on(server, url: str) -> str:
    """The same URL, sent to another op-proxy process (as a load balancer might)."""
    parts = urlsplit(url)
    return parts._replace(netloc=urlsplit(server.base).netloc).geturl()


def exchange(server, code: str, client_id: str = "demo", redirect_uri: str = "http://127.0.0.1:5000/callback"):
    return httpx.post(server.url("/token"), auth=(client_id, "demo-secret"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": VERIFIER})


@EVERY_DATABASE
def test_a_person_signs_in_and_the_app_gets_verified_tokens(make_server):
    server = make_server()
    person = Person(server.issuer)
    app, url, state = authorization_url(server.issuer)
    arrival = person.sign_in(url)
    token = app.fetch_token(server.url("/token"), authorization_response=arrival.url, code_verifier=VERIFIER)
    claims = verify_id_token(server.issuer, token["id_token"], "demo", nonce="nonce-1")
    assert claims["name"] == "สมชาย ใจดี"
    refreshed = app.refresh_token(server.url("/token"))
    assert verify_id_token(server.issuer, refreshed["id_token"], "demo")["sub"] == claims["sub"]


@EVERY_DATABASE
def test_a_restart_in_the_middle_of_a_sign_in_loses_nothing(make_server):
    server = make_server()
    person = Person(server.issuer)
    _app, url, state = authorization_url(server.issuer)
    password_page = person.visit(url)
    assert isinstance(password_page, Page) and password_page.has_password_form()

    server.restart()

    arrival = person.submit_password(password_page)
    assert isinstance(arrival, Arrival) and arrival.params["state"] == state
    server.restart()
    assert exchange(server, arrival.params["code"]).status_code == 200


@EVERY_DATABASE
def test_another_process_finishes_a_sign_in_the_first_one_began(make_server):
    first = make_server()
    second = make_server()  # same config: same issuer, database and keys; another port
    person = Person(first.issuer)
    _app, url, state = authorization_url(first.issuer)
    password_page = person.visit(url)

    # The load balancer sends the form submission to the second process.
    response = person.http.post(on(second, password_page.forms()[0]["action"]),
                                data={"username": "demo", "password": "demo"})
    assert response.status_code == 303
    arrival = Arrival(response.headers["location"])
    assert arrival.params["state"] == state and arrival.params["iss"] == first.issuer

    # ... and the token request to the first one again; tokens verify with either process's JWKS.
    token = exchange(first, arrival.params["code"]).json()
    assert verify_id_token(first.issuer, token["id_token"], "demo", nonce="nonce-1")["name"] == "สมชาย ใจดี"
    second_keys = httpx.get(second.url("/jwks")).json()
    assert second_keys == httpx.get(first.url("/jwks")).json()

    # The SSO session is shared too: the second process signs the person into another app at once.
    _other, url, _ = authorization_url(first.issuer, "second-app", "http://127.0.0.1:5002/callback")
    assert person.http.get(on(second, url)).headers["location"].startswith("http://127.0.0.1:5002/callback?code=")


@EVERY_DATABASE
def test_two_processes_racing_to_redeem_one_code_issue_tokens_only_once(make_server):
    first = make_server()
    second = make_server()
    person = Person(first.issuer)
    _app, url, _ = authorization_url(first.issuer)
    code = person.sign_in(url).params["code"]

    answers = []
    start = threading.Barrier(2)

    def redeem(server):
        start.wait()
        answers.append(exchange(server, code))

    threads = [threading.Thread(target=redeem, args=(s,)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 400]
    refused = next(a for a in answers if a.status_code == 400)
    assert refused.json()["error"] == "invalid_grant"
