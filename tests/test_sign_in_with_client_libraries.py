"""An application signs people in with a standard OIDC library pointed at op-proxy."""

from __future__ import annotations

import os

import pytest

from tests.support.person import Arrival, Person
from tests.support.rp import (
    authlib_client,
    discovery,
    openid_client,
    require_node,
    verify_id_token,
)


def test_authlib_web_app_signs_in_the_demo_user_and_verifies_the_id_token(server, person):
    metadata = discovery(server.issuer)
    app = authlib_client(server.issuer, "demo", "demo-secret", "http://127.0.0.1:5000/callback")
    verifier = os.urandom(40).hex()
    url, state = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                              nonce="n-0S6_WzA2Mj")

    arrival = person.sign_in(url)

    assert isinstance(arrival, Arrival) and arrival.url.startswith("http://127.0.0.1:5000/callback?")
    assert arrival.params["state"] == state
    assert arrival.params["iss"] == server.issuer  # RFC 9207
    token = app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url,
                            code_verifier=verifier)
    claims = verify_id_token(server.issuer, token["id_token"], "demo", nonce="n-0S6_WzA2Mj",
                             access_token=token["access_token"])
    assert claims["name"] == "สมชาย ใจดี"
    assert claims["given_name"] == "สมชาย" and claims["family_name"] == "ใจดี"
    assert claims["email"] == "somchai.j@example.ac.th"
    assert claims["azp"] == "demo" and claims["sid"] and claims["auth_time"] <= claims["iat"]
    assert claims["amr"] == ["pwd"] and claims["acr"]
    assert "pid" not in claims  # the national ID is for clients allowed the thaid scope only
    assert token["token_type"] == "Bearer" and token["refresh_token"]

    userinfo = app.get(metadata["userinfo_endpoint"]).json()
    assert userinfo["sub"] == claims["sub"]
    assert userinfo["preferred_username"] == "demo"


def test_a_second_app_in_the_same_browser_signs_in_without_a_second_login(server, person):
    metadata = discovery(server.issuer)
    first = authlib_client(server.issuer, "demo", "demo-secret", "http://127.0.0.1:5000/callback")
    url, _ = first.create_authorization_url(metadata["authorization_endpoint"], code_verifier="a" * 43)
    person.sign_in(url)
    pages_before = len(person.pages)

    second = authlib_client(server.issuer, "second-app", "demo-secret", "http://127.0.0.1:5002/callback")
    url, state = second.create_authorization_url(metadata["authorization_endpoint"], code_verifier="b" * 43)
    arrival = person.visit(url)

    assert isinstance(arrival, Arrival), "the person saw a page instead of going straight back"
    assert len(person.pages) == pages_before  # no login page this time
    token = second.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url,
                               code_verifier="b" * 43)
    assert verify_id_token(server.issuer, token["id_token"], "second-app")["preferred_username"] == "demo"


def test_response_mode_form_post_hands_the_code_back_in_a_posted_form(server, person):
    metadata = discovery(server.issuer)
    app = authlib_client(server.issuer, "demo", "demo-secret", "http://127.0.0.1:5000/callback")
    url, state = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier="c" * 43,
                                              response_mode="form_post")
    arrival = person.sign_in(url)

    assert arrival.method == "POST" and arrival.url == "http://127.0.0.1:5000/callback"
    assert arrival.params["state"] == state and arrival.params["iss"] == server.issuer
    token = app.fetch_token(metadata["token_endpoint"], code=arrival.params["code"], code_verifier="c" * 43)
    assert verify_id_token(server.issuer, token["id_token"], "demo")["sub"]


def test_client_secret_post_client_signs_in(server, person):
    metadata = discovery(server.issuer)
    app = authlib_client(server.issuer, "demo-post", "demo-secret", "http://127.0.0.1:5001/callback",
                         auth_method="client_secret_post")
    url, _ = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier="d" * 43)
    arrival = person.sign_in(url)
    token = app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url, code_verifier="d" * 43)
    assert verify_id_token(server.issuer, token["id_token"], "demo-post")["preferred_username"] == "demo"


def test_public_spa_client_signs_in_with_pkce_and_no_secret(server, person):
    metadata = discovery(server.issuer)
    spa = authlib_client(server.issuer, "demo-spa", None, "http://127.0.0.1:5173/callback", auth_method="none")
    url, _ = spa.create_authorization_url(metadata["authorization_endpoint"], code_verifier="e" * 43)
    arrival = person.sign_in(url)
    token = spa.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url, code_verifier="e" * 43)
    assert verify_id_token(server.issuer, token["id_token"], "demo-spa")["preferred_username"] == "demo"


@pytest.fixture
def node():
    return require_node("openid-client")


@pytest.mark.parametrize("client_id,secret,method,redirect_uri", [
    ("demo", "demo-secret", "client_secret_basic", "http://127.0.0.1:5000/callback"),
    ("demo-post", "demo-secret", "client_secret_post", "http://127.0.0.1:5001/callback"),
    ("demo-spa", None, "none", "http://127.0.0.1:5173/callback"),
])
def test_node_openid_client_completes_the_flow_and_verifies_everything(node, server, client_id, secret, method,
                                                                        redirect_uri):
    common = dict(issuer=server.issuer, client_id=client_id, client_secret=secret, auth_method=method,
                  redirect_uri=redirect_uri)
    started = openid_client("start", scope="openid profile email", **common)
    someone = Person(server.issuer)
    arrival = someone.sign_in(started["authorization_url"])
    someone.close()

    # openid-client checks state, iss (RFC 9207), PKCE, the ID token's signature against our JWKS,
    # nonce, at_hash, then calls userinfo and refreshes once.
    finished = openid_client("finish", callback_url=arrival.url, code_verifier=started["code_verifier"],
                             state=started["state"], nonce=started["nonce"], **common)
    assert finished["id_token_claims"]["name"] == "สมชาย ใจดี"
    assert finished["userinfo"]["email"] == "somchai.j@example.ac.th"
    assert finished["refreshed"]["id_token_claims"]["sub"] == finished["id_token_claims"]["sub"]
    assert finished["refreshed"]["refresh_token"] != finished["refresh_token"]
