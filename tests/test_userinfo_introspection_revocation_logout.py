"""After the sign-in: an application reads the person's profile, checks and revokes its tokens, and
signs the person out again. Plus what discovery promises, and clients that prove who they are with a
signed JWT (private_key_jwt) instead of a secret."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import urlencode

import httpx
import pytest
from authlib.jose import JsonWebKey
from authlib.jose import jwt as authlib_jwt
from jwcrypto import jwk

from op_proxy.config import load_settings
from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, KeyedApp, assert_error, discovery, verify_id_token
from tests.support.server import DEMO_PROFILE, DEMO_SECRET_HASH, ROOT, default_clients

PROFILE_AND_EMAIL = "openid profile email"
DEMO_HOME = "http://127.0.0.1:5000/"


def userinfo(issuer: str, access_token: str, *, in_body: bool = False) -> httpx.Response:
    url = discovery(issuer)["userinfo_endpoint"]
    if in_body:
        return httpx.post(url, data={"access_token": access_token}, timeout=15)
    return httpx.get(url, headers={"Authorization": f"Bearer {access_token}"}, timeout=15)


def with_flipped_signature_char(token: str) -> str:
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, payload, signature[:middle] + flipped + signature[middle + 1:]])


@pytest.fixture
def app(server) -> App:
    return App(server.issuer, scope=PROFILE_AND_EMAIL)


@pytest.fixture
def second_app(server) -> App:
    return App(server.issuer, "second-app", "http://127.0.0.1:5002/callback", scope=PROFILE_AND_EMAIL)


# -- discovery -----------------------------------------------------------------------------------------

def test_discovery_advertises_only_what_works(server):
    metadata = discovery(server.issuer)

    assert metadata["issuer"] == server.issuer
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}

    posted_to = {"token_endpoint", "introspection_endpoint", "revocation_endpoint"}
    endpoints = {name: url for name, url in metadata.items() if name.endswith("_endpoint") or name == "jwks_uri"}
    assert {"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint",
            "introspection_endpoint", "revocation_endpoint"} <= set(endpoints)
    for name, url in endpoints.items():
        assert url.startswith(server.issuer + "/"), name
        response = httpx.request("POST" if name in posted_to else "GET", url, timeout=15)
        assert response.status_code not in (404, 405) and response.status_code < 500, (name, response.status_code)


def test_the_published_signing_keys_say_what_they_are_for_and_may_be_cached(server):
    response = httpx.get(discovery(server.issuer)["jwks_uri"])

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert key["kid"] and key["use"] == "sig" and key["alg"] == "RS256" and key["kty"] == "RSA"
        assert "d" not in key and "p" not in key  # public halves only
    cache_control = response.headers.get("Cache-Control", "")
    max_age = [int(part.split("=")[1]) for part in cache_control.replace(" ", "").split(",")
               if part.startswith("max-age=")]
    assert max_age and max_age[0] > 0, cache_control


def test_an_app_revalidates_discovery_and_the_keys_with_their_etag_and_gets_no_body_back(server):
    metadata = discovery(server.issuer)
    assert "version" not in metadata  # not an OIDC Discovery member (pyoidc's default "3.0")
    for url in (server.issuer + "/.well-known/openid-configuration", metadata["jwks_uri"]):
        first = httpx.get(url)
        etag = first.headers["ETag"]

        unchanged = httpx.get(url, headers={"If-None-Match": etag})
        changed = httpx.get(url, headers={"If-None-Match": '"an-older-version"'})

        assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["ETag"] == etag
        assert changed.status_code == 200 and changed.json() == first.json()


# -- userinfo ------------------------------------------------------------------------------------------

def test_an_app_reads_the_profile_with_the_access_token_in_the_authorization_header(server, person, app):
    tokens = app.sign_in(person)
    sub = verify_id_token(server.issuer, tokens["id_token"], "demo")["sub"]

    response = userinfo(server.issuer, tokens["access_token"])

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    profile = response.json()
    assert profile["sub"] == sub
    assert profile["name"] == "สมชาย ใจดี" and profile["email"] == "somchai.j@example.ac.th"


def test_an_app_may_post_the_access_token_in_the_form_body_instead(server, person, app):
    tokens = app.sign_in(person)

    response = userinfo(server.issuer, tokens["access_token"], in_body=True)

    assert response.status_code == 200
    assert response.json()["preferred_username"] == "demo"


def test_userinfo_without_a_token_asks_for_a_bearer_token(server):
    response = httpx.get(discovery(server.issuer)["userinfo_endpoint"])

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("spoil", [
    pytest.param(lambda token: "not-a-token", id="garbage"),
    pytest.param(with_flipped_signature_char, id="tampered-signature"),
])
def test_a_garbage_or_tampered_access_token_is_refused(server, person, app, spoil):
    tokens = app.sign_in(person)

    response = userinfo(server.issuer, spoil(tokens["access_token"]))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_id_token_does_not_work_as_an_access_token(server, person, app):
    tokens = app.sign_in(person)

    response = userinfo(server.issuer, tokens["id_token"])

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_with_only_the_openid_scope_the_app_learns_who_but_nothing_about_them(server, person, app):
    tokens = app.sign_in(person, scope="openid")

    profile = userinfo(server.issuer, tokens["access_token"]).json()

    assert set(profile) == {"sub"}


def test_with_the_email_scope_the_app_gets_the_email_address_but_not_the_name(server, person, app):
    tokens = app.sign_in(person, scope="openid email")

    profile = userinfo(server.issuer, tokens["access_token"]).json()

    assert profile["email"] == "somchai.j@example.ac.th"
    for claim in ("name", "given_name", "family_name", "preferred_username"):
        assert claim not in profile


def test_a_developer_trying_the_demo_with_the_phone_scope_gets_a_phone_number(server, person, app):
    """Discovery lists ``phone``; the demo person (conf/dev.toml, mirrored by the tests' server) has a
    made-up number, so an app asking for it sees what a real one would, and nothing more."""
    shipped = load_settings(ROOT / "conf" / "dev.toml", environ={})
    demo_person = next(user for user in shipped.upstreams["local"].users if user.username == "demo")
    assert demo_person.claims["phone_number"] == DEMO_PROFILE["phone_number"]
    assert "phone" in discovery(server.issuer)["scopes_supported"]

    tokens = app.sign_in(person, scope="openid phone")
    profile = userinfo(server.issuer, tokens["access_token"]).json()

    assert profile["phone_number"] == DEMO_PROFILE["phone_number"]
    assert set(profile) == {"sub", "phone_number"}


def test_the_access_token_is_a_jwt_a_resource_server_can_verify_with_the_jwks(server, person, app):
    tokens = app.sign_in(person)
    id_claims = verify_id_token(server.issuer, tokens["id_token"], "demo")
    keys = JsonWebKey.import_key_set(httpx.get(discovery(server.issuer)["jwks_uri"]).json())

    claims = authlib_jwt.decode(tokens["access_token"], keys)  # RFC 9068 §4: signature with our keys
    claims.validate(leeway=5)

    assert claims.header["typ"] == "at+jwt" and claims.header["alg"] == "RS256"
    assert claims["iss"] == server.issuer
    assert claims["sub"] == id_claims["sub"]
    assert claims["aud"] == "demo" and claims["client_id"] == "demo"
    assert claims["exp"] > claims["iat"] >= id_claims["iat"] - 5
    assert claims["jti"]
    assert claims["scope"].split() == ["openid", "profile", "email"]


# -- introspection (RFC 7662) ---------------------------------------------------------------------------

def test_introspection_describes_an_active_access_token(server, person, app):
    tokens = app.sign_in(person)
    sub = verify_id_token(server.issuer, tokens["id_token"], "demo")["sub"]

    answer = app.introspect(tokens["access_token"])

    assert answer["active"] is True
    assert answer["scope"] == "openid profile email"
    assert answer["client_id"] == "demo" and answer["sub"] == sub
    assert answer["exp"] > time.time()


def test_introspection_describes_a_refresh_token_given_the_hint(server, person, app):
    tokens = app.sign_in(person)

    answer = app.introspect(tokens["refresh_token"], hint="refresh_token")

    assert answer["active"] is True and answer["client_id"] == "demo"


def test_introspection_says_inactive_for_garbage(app):
    assert app.introspect("this-is-not-a-token") == {"active": False}


def test_an_app_learns_nothing_about_another_apps_tokens(server, person, app, second_app):
    tokens = app.sign_in(person)

    assert second_app.introspect(tokens["access_token"]) == {"active": False}
    assert second_app.introspect(tokens["refresh_token"], hint="refresh_token") == {"active": False}
    assert app.introspect(tokens["access_token"])["active"] is True  # the owner still sees it


@pytest.mark.parametrize("endpoint", ["introspection_endpoint", "revocation_endpoint"])
def test_introspection_and_revocation_need_client_authentication(server, person, app, endpoint):
    tokens = app.sign_in(person)

    response = httpx.post(discovery(server.issuer)[endpoint], data={"token": tokens["access_token"]})

    assert_error(response, "invalid_client", status=401)
    assert app.introspect(tokens["access_token"])["active"] is True


# -- revocation (RFC 7009) -------------------------------------------------------------------------------

def test_a_revoked_access_token_stops_working(server, person, app):
    tokens = app.sign_in(person)

    response = app.revoke(tokens["access_token"], hint="access_token")

    assert response.status_code == 200
    assert app.introspect(tokens["access_token"]) == {"active": False}
    assert userinfo(server.issuer, tokens["access_token"]).status_code == 401


def test_revoking_the_refresh_token_ends_the_whole_grant(server, person, app):
    tokens = app.sign_in(person)

    response = app.revoke(tokens["refresh_token"], hint="refresh_token")

    assert response.status_code == 200
    assert_error(app.refresh(tokens["refresh_token"]), "invalid_grant")
    assert userinfo(server.issuer, tokens["access_token"]).status_code == 401  # RFC 7009 §2.1
    assert app.introspect(tokens["access_token"]) == {"active": False}


def test_revoking_an_unknown_token_is_not_an_error(app):
    assert app.revoke("never-issued-token").status_code == 200


# -- opaque access tokens, for a client whose resource servers introspect ---------------------------------

OPAQUE_APP = {"client_id": "opaque-app", "name": "Introspects its tokens", "client_secret_hash": DEMO_SECRET_HASH,
              "redirect_uris": ["http://127.0.0.1:5006/callback"], "access_token_format": "opaque"}


def test_a_client_that_asked_for_opaque_access_tokens_gets_ones_that_work_until_revoked(make_server):
    server = make_server(clients=default_clients() + [OPAQUE_APP])
    app = App(server.issuer, "opaque-app", "http://127.0.0.1:5006/callback", scope=PROFILE_AND_EMAIL)
    person = Person(server.issuer)
    try:
        tokens = app.sign_in(person)
    finally:
        person.close()
    access_token = tokens["access_token"]
    assert "." not in access_token, "a JWT was issued to a client that asked for opaque access tokens"
    id_claims = verify_id_token(server.issuer, tokens["id_token"], "opaque-app")
    digest = hashlib.sha256(access_token.encode()).digest()
    assert id_claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    assert userinfo(server.issuer, access_token).json()["sub"] == id_claims["sub"]
    answer = app.introspect(access_token)
    assert answer["active"] is True and answer["scope"] == "openid profile email"
    assert answer["client_id"] == "opaque-app" and answer["sub"] == id_claims["sub"]
    assert App(server.issuer, "second-app", "http://127.0.0.1:5002/callback").introspect(access_token) == {
        "active": False}

    refreshed = app.refresh(tokens["refresh_token"])
    assert refreshed.status_code == 200 and "." not in refreshed.json()["access_token"]
    assert app.revoke(access_token, hint="access_token").status_code == 200
    assert app.introspect(access_token) == {"active": False}
    assert userinfo(server.issuer, access_token).status_code == 401
    assert userinfo(server.issuer, refreshed.json()["access_token"]).status_code == 200


def test_an_app_cannot_revoke_another_apps_tokens(server, person, app, second_app):
    tokens = app.sign_in(person)

    assert second_app.revoke(tokens["access_token"]).status_code == 200
    assert second_app.revoke(tokens["refresh_token"], hint="refresh_token").status_code == 200

    assert userinfo(server.issuer, tokens["access_token"]).status_code == 200
    assert app.introspect(tokens["refresh_token"], hint="refresh_token")["active"] is True
    assert app.refresh(tokens["refresh_token"]).status_code == 200


# -- private_key_jwt ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid="keyed-app-2024")


@pytest.fixture
def keyed_server(make_server, client_key):
    keyed = {"client_id": "keyed-app", "name": "Signs its requests", "token_endpoint_auth_method": "private_key_jwt",
             "jwks": {"keys": [client_key.export_public(as_dict=True)]},
             "redirect_uris": ["http://127.0.0.1:5004/callback"]}
    return make_server(clients=[*default_clients(), keyed])


@pytest.fixture
def keyed_app(keyed_server, client_key) -> KeyedApp:
    return KeyedApp(keyed_server.issuer, "keyed-app", "http://127.0.0.1:5004/callback", key=client_key,
                    scope=PROFILE_AND_EMAIL)


def keyed_code(server, app: KeyedApp) -> str:
    person = Person(server.issuer)
    try:
        return app.code_for(person)
    finally:
        person.close()


def test_a_client_with_its_own_key_signs_in_with_a_signed_assertion(keyed_server, keyed_app):
    code = keyed_code(keyed_server, keyed_app)

    response = keyed_app.exchange(code)

    assert response.status_code == 200, response.text
    tokens = response.json()
    assert verify_id_token(keyed_server.issuer, tokens["id_token"], "keyed-app")["preferred_username"] == "demo"
    assert userinfo(keyed_server.issuer, tokens["access_token"]).json()["email"] == "somchai.j@example.ac.th"
    assert keyed_app.introspect(tokens["access_token"])["client_id"] == "keyed-app"


def test_a_replayed_client_assertion_is_refused(keyed_server, keyed_app):
    code = keyed_code(keyed_server, keyed_app)
    assertion = keyed_app.assertion()
    first = keyed_app.exchange(code, client_assertion=assertion)
    assert first.status_code == 200, first.text

    replayed = keyed_app.refresh(first.json()["refresh_token"], client_assertion=assertion)

    assert_error(replayed, "invalid_client", status=401)
    assert keyed_app.refresh(first.json()["refresh_token"]).status_code == 200  # a fresh assertion works


def test_an_assertion_signed_with_another_key_is_refused(keyed_server, keyed_app):
    code = keyed_code(keyed_server, keyed_app)
    impostor_key = jwk.JWK.generate(kty="RSA", size=2048)

    forged = keyed_app.exchange(code, client_assertion=keyed_app.assertion(key=impostor_key))

    assert_error(forged, "invalid_client", status=401)
    assert keyed_app.exchange(code).status_code == 200  # the code was not spent by the impostor


# -- RP-initiated logout ------------------------------------------------------------------------------------

def logout_url(server, **params) -> str:
    return discovery(server.issuer)["end_session_endpoint"] + ("?" + urlencode(params) if params else "")


def test_the_app_signs_the_person_out_and_gets_them_back_with_its_state(server, person, app):
    tokens = app.sign_in(person)

    arrival = person.visit(logout_url(server, id_token_hint=tokens["id_token"],
                                      post_logout_redirect_uri=DEMO_HOME, state="bye-123"))

    assert isinstance(arrival, Arrival), "the person saw a page instead of going back to the app"
    assert arrival.url.startswith(DEMO_HOME + "?") and arrival.params["state"] == "bye-123"
    assert app.silent_sign_in(person).params["error"] == "login_required"
    assert_error(app.refresh(tokens["refresh_token"]), "invalid_grant")
    assert app.introspect(tokens["refresh_token"], hint="refresh_token") == {"active": False}


@pytest.mark.parametrize("return_to", [
    "https://evil.example/",
    "http://127.0.0.1:5173/",  # registered, but by another application
    DEMO_HOME + "more",
])
def test_an_unregistered_return_address_shows_our_error_page_and_goes_nowhere(server, person, app, return_to):
    tokens = app.sign_in(person)

    page = person.visit(logout_url(server, id_token_hint=tokens["id_token"], post_logout_redirect_uri=return_to,
                                   state="s"))

    assert isinstance(page, Page), f"the person was sent to {page.url}"
    assert page.status == 400
    assert page.title == "ที่อยู่สำหรับกลับไม่ถูกต้อง"  # "Invalid return address"
    assert "code" in app.silent_sign_in(person).params  # still signed in


def test_without_an_id_token_hint_the_person_confirms_and_is_signed_out(server, person, app):
    app.sign_in(person)

    confirm = person.visit(logout_url(server))

    assert isinstance(confirm, Page) and confirm.status == 200
    assert confirm.title == "ออกจากระบบหรือไม่?"  # "Sign out?"
    assert "code" in app.silent_sign_in(person).params  # merely seeing the page signs no one out

    done = person.submit(confirm)

    assert isinstance(done, Page) and done.status == 200
    assert done.title == "คุณออกจากระบบแล้ว"  # "You are signed out"
    assert app.silent_sign_in(person).params["error"] == "login_required"


@pytest.mark.parametrize("csrf", [None, "forged-value"])
def test_a_posted_sign_out_without_the_pages_csrf_value_does_not_sign_out(server, person, app, csrf):
    app.sign_in(person)

    page = person.visit(logout_url(server), method="POST", data={} if csrf is None else {"csrf": csrf})

    assert isinstance(page, Page)
    assert page.title == "ออกจากระบบหรือไม่?"  # asked to confirm, not signed out
    assert "code" in app.silent_sign_in(person).params


def test_an_access_token_is_no_id_token_hint_for_signing_someone_out(server, person, app):
    tokens = app.sign_in(person)

    page = person.visit(logout_url(server, id_token_hint=tokens["access_token"],
                                   post_logout_redirect_uri=DEMO_HOME))

    assert isinstance(page, Page) and page.status == 400
    assert page.title == "ออกจากระบบไม่สำเร็จ"  # "Sign-out failed"
    assert "code" in app.silent_sign_in(person).params  # still signed in


def test_an_access_token_is_no_id_token_hint_at_the_authorization_endpoint(server, person, app):
    tokens = app.sign_in(person)

    arrival = person.visit(app.authorization_url(id_token_hint=tokens["access_token"], prompt="none"))

    app.assert_error_back(arrival, "invalid_request")
