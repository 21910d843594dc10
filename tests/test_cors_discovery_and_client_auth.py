"""A single-page application calls the token, userinfo and revocation endpoints from its own pages
(CORS), and nobody else's pages may; discovery says exactly what is accepted; the token endpoint
refuses ambiguous requests and client assertions that name two clients or live too long.

Every test here fails if the rule it names is taken out of op-proxy.
"""

from __future__ import annotations

import httpx
import pytest
from jwcrypto import jwk

from tests.support.databases import sqlite_url
from tests.support.person import Person
from tests.support.rp import App, KeyedApp, assert_error, discovery
from tests.support.server import OpProxyServer, default_clients, free_port, write_config

SPA_ORIGIN = "http://127.0.0.1:5173"  # where demo-spa's pages are (its redirect URI's origin)
SPA_CALLBACK = SPA_ORIGIN + "/callback"
DEMO_CALLBACK = "http://127.0.0.1:5000/callback"
KEYED_CALLBACK = "http://127.0.0.1:5004/callback"


# -- the servers and the applications ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_key() -> jwk.JWK:
    return jwk.JWK.generate(kty="RSA", size=2048, kid="keyed-app-1")


def keyed_client(key: jwk.JWK) -> dict:
    return {"client_id": "keyed-app", "name": "Signs its requests", "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.export_public(as_dict=True)]}, "redirect_uris": [KEYED_CALLBACK]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, client_key):
    """The demo clients plus one that authenticates with its own key (private_key_jwt)."""
    directory = tmp_path_factory.mktemp("op-proxy")
    port = free_port()
    config = write_config(directory, port=port, database_url=sqlite_url(directory),
                          clients=[*default_clients(), keyed_client(client_key)])
    running = OpProxyServer(config, port).start()
    yield running
    running.stop()


@pytest.fixture
def keyed_app(server, client_key) -> KeyedApp:
    return KeyedApp(server.issuer, "keyed-app", KEYED_CALLBACK, key=client_key, scope="openid profile")


class PageScript:
    """JavaScript on a page at ``origin``: the browser adds the Origin header to each request and lets
    the script read an answer only if op-proxy allows that origin (and asks first, for a preflight)."""

    def __init__(self, server, origin: str = SPA_ORIGIN):
        self.server, self.origin = server, origin

    def fetch(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Origin": self.origin, **kwargs.pop("headers", {})}
        return httpx.request(method, self.server.url(path), headers=headers, timeout=15, **kwargs)

    def preflight(self, path: str, method: str = "POST", headers: str = "content-type") -> httpx.Response:
        return self.fetch("OPTIONS", path, headers={"Access-Control-Request-Method": method,
                                                    "Access-Control-Request-Headers": headers})

    def may_read(self, response: httpx.Response) -> bool:
        return response.headers.get("Access-Control-Allow-Origin") == self.origin

    def preflight_allows(self, path: str, method: str, headers: str) -> bool:
        answer = self.preflight(path, method, headers)
        allowed_methods = answer.headers.get("Access-Control-Allow-Methods", "").replace(" ", "").split(",")
        allowed_headers = answer.headers.get("Access-Control-Allow-Headers", "").lower().replace(" ", "").split(",")
        return (answer.status_code < 300 and self.may_read(answer) and method in allowed_methods
                and set(headers.split(",")) <= set(allowed_headers))


def varies_by_origin(response: httpx.Response) -> bool:
    return "origin" in response.headers.get("Vary", "").lower().replace(" ", "").split(",")


# -- CORS --------------------------------------------------------------------------------------------------

def test_a_single_page_app_signs_in_reads_the_profile_and_signs_out_from_its_own_pages(server, person):
    spa = PageScript(server)
    app = App(server.issuer, "demo-spa", SPA_CALLBACK, secret=None, auth="none", scope="openid profile")
    code, verifier = app.code_for(person), app.verifier

    assert spa.preflight_allows("/token", "POST", "content-type")
    tokens = spa.fetch("POST", "/token", data={"grant_type": "authorization_code", "code": code,
                                               "client_id": "demo-spa", "redirect_uri": SPA_CALLBACK,
                                               "code_verifier": verifier})
    assert tokens.status_code == 200 and spa.may_read(tokens), tokens.headers
    access_token = tokens.json()["access_token"]

    assert spa.preflight_allows("/userinfo", "GET", "authorization")
    profile = spa.fetch("GET", "/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert profile.status_code == 200 and spa.may_read(profile)
    assert profile.json()["preferred_username"] == "demo"

    assert spa.preflight_allows("/revoke", "POST", "content-type")
    revoked = spa.fetch("POST", "/revoke", data={"token": access_token, "client_id": "demo-spa"})
    assert revoked.status_code == 200 and spa.may_read(revoked)

    refused = spa.fetch("GET", "/userinfo", headers={"Authorization": f"Bearer {access_token}"})
    assert refused.status_code == 401 and spa.may_read(refused)  # the app can tell why
    assert "www-authenticate" in refused.headers.get("Access-Control-Expose-Headers", "").lower()


def test_cors_permission_never_includes_the_browsers_cookies_and_is_cached_briefly(server):
    answer = PageScript(server).preflight("/token", "POST", "content-type")

    assert "Access-Control-Allow-Credentials" not in answer.headers
    assert 0 < int(answer.headers["Access-Control-Max-Age"]) <= 3600
    assert varies_by_origin(answer)


def test_the_app_can_read_why_the_token_endpoint_refused_its_code(server):
    spa = PageScript(server)

    refused = spa.fetch("POST", "/token", data={"grant_type": "authorization_code", "code": "not-a-code",
                                                "client_id": "demo-spa", "redirect_uri": SPA_CALLBACK,
                                                "code_verifier": "v" * 43})

    assert refused.status_code == 400 and spa.may_read(refused)
    assert refused.json()["error"] == "invalid_grant"


def test_the_token_endpoint_answers_alike_however_the_app_sends_its_request(server):
    # The ordinary request (a urlencoded form) is answered on a short path below the web framework
    # (provider/api.py); a multipart form or a ?lang= goes the framework's way. The app sees no difference.
    spa = PageScript(server)
    form = {"grant_type": "authorization_code", "code": "not-a-code", "client_id": "demo-spa",
            "redirect_uri": SPA_CALLBACK, "code_verifier": "v" * 43}

    def seen_by_the_app(answer: httpx.Response):
        unlike = {"date", "x-request-id", "set-cookie"}  # set-cookie: ?lang= remembers the language
        return answer.status_code, answer.json(), sorted((k, v) for k, v in answer.headers.items() if k not in unlike)

    ordinary = spa.fetch("POST", "/token", data=form)
    as_multipart = spa.fetch("POST", "/token", files={name: (None, value) for name, value in form.items()})
    naming_a_language = spa.fetch("POST", "/token?lang=en", data=form)

    assert seen_by_the_app(ordinary)[:2] == (400, {"error": "invalid_grant",
                                                   "error_description": "unknown authorization code"})
    assert seen_by_the_app(as_multipart) == seen_by_the_app(ordinary)
    assert seen_by_the_app(naming_a_language) == seen_by_the_app(ordinary)


@pytest.mark.parametrize("origin", ["https://attacker.example", "http://127.0.0.1:5174", "null"])
def test_pages_of_a_site_that_is_no_registered_app_get_no_cors_permission(server, origin):
    stranger = PageScript(server, origin)

    for path, method, headers in [("/token", "POST", "content-type"), ("/userinfo", "GET", "authorization"),
                                  ("/revoke", "POST", "content-type")]:
        assert not stranger.preflight_allows(path, method, headers), path
    answer = stranger.fetch("POST", "/token", data={"grant_type": "authorization_code", "code": "x",
                                                    "client_id": "demo-spa"})
    assert "Access-Control-Allow-Origin" not in answer.headers
    assert varies_by_origin(answer)  # a cache must not hand this answer to a registered app's page


def test_introspection_stays_closed_to_pages_even_of_registered_apps(server):
    spa = PageScript(server)

    assert not spa.preflight_allows("/introspect", "POST", "content-type")
    answer = spa.fetch("POST", "/introspect", data={"token": "x"}, auth=("demo", "demo-secret"))
    assert answer.status_code == 200 and not spa.may_read(answer)


def test_an_app_removed_from_the_config_loses_its_cors_permission(make_server):
    before = make_server()
    assert PageScript(before).preflight_allows("/token", "POST", "content-type")
    before.stop()

    after = make_server(clients=[c for c in default_clients() if c["client_id"] != "demo-spa"])

    assert not PageScript(after).preflight_allows("/token", "POST", "content-type")
    assert PageScript(after, "http://127.0.0.1:5000").preflight_allows("/token", "POST", "content-type")


# -- discovery ---------------------------------------------------------------------------------------------

def test_discovery_names_each_claim_once_and_promises_no_claims_locales(server):
    metadata = discovery(server.issuer)

    assert len(metadata["claims_supported"]) == len(set(metadata["claims_supported"]))
    assert "sub" in metadata["claims_supported"]
    assert "claims_locales_supported" not in metadata  # nothing reads claims_locales


@pytest.mark.parametrize("endpoint", ["token_endpoint", "introspection_endpoint", "revocation_endpoint"])
def test_discovery_names_the_assertion_algorithms_wherever_private_key_jwt_is_offered(server, endpoint):
    metadata = discovery(server.issuer)
    prefix = endpoint.removesuffix("_endpoint")

    assert "private_key_jwt" in metadata[f"{prefix}_endpoint_auth_methods_supported"]
    algorithms = metadata.get(f"{prefix}_endpoint_auth_signing_alg_values_supported")
    assert algorithms and "RS256" in algorithms and "none" not in algorithms  # RFC 8414 §2


# -- the token endpoint ------------------------------------------------------------------------------------

def demo_tokens(server, person: Person) -> dict:
    return App(server.issuer, scope="openid profile").sign_in(person)


def test_a_repeated_parameter_makes_the_token_request_invalid_and_spends_nothing(server, person):
    refresh_token = demo_tokens(server, person)["refresh_token"]

    ambiguous = httpx.post(server.url("/token"), auth=("demo", "demo-secret"), data={
        "grant_type": ["refresh_token", "authorization_code"], "refresh_token": refresh_token})

    assert_error(ambiguous, "invalid_request")
    refreshed = httpx.post(server.url("/token"), auth=("demo", "demo-secret"),
                           data={"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert refreshed.status_code == 200, refreshed.text  # the refresh token was not used up


def test_introspection_calls_an_access_token_bearer_and_gives_a_refresh_token_no_token_type(server, person):
    tokens = demo_tokens(server, person)

    def introspect(token: str) -> dict:
        return httpx.post(server.url("/introspect"), auth=("demo", "demo-secret"), data={"token": token}).json()

    refresh = introspect(tokens["refresh_token"])
    assert refresh["active"] is True and "token_type" not in refresh
    assert introspect(tokens["access_token"])["token_type"] == "Bearer"


# -- private_key_jwt ----------------------------------------------------------------------------------------

def test_an_assertion_sent_under_another_apps_client_id_is_refused(person, keyed_app):
    code = keyed_app.code_for(person)

    mixed = keyed_app.exchange(code, client_id="demo")

    assert_error(mixed, "invalid_client", status=401)  # RFC 7521 §4.2
    assert keyed_app.exchange(code).status_code == 200


@pytest.mark.parametrize("lifetime, reason", [
    (3600, "lives longer than 10 minutes"),  # Authlib's default assertion
    (30 * 86400, "lives longer than 10 minutes"),
    (None, "exp is required"),
], ids=["an-hour", "a-month", "no-exp"])
def test_an_assertion_that_stays_valid_too_long_or_forever_is_refused_and_told_why(
        person, keyed_app, lifetime, reason):
    code = keyed_app.code_for(person)

    long_lived = keyed_app.exchange(code, client_assertion=keyed_app.assertion(lifetime=lifetime))

    # the app's developer is told what to fix
    assert_error(long_lived, "invalid_client", status=401, description_contains=reason)
    short_lived = keyed_app.exchange(code, client_assertion=keyed_app.assertion(lifetime=300))
    assert short_lived.status_code == 200, short_lived.text


def test_a_replayed_assertion_or_one_signed_with_another_key_is_refused_and_told_why(person, keyed_app):
    code = keyed_app.code_for(person)
    stranger = jwk.JWK.generate(kty="RSA", size=2048, kid=keyed_app.key.key_id)
    used = keyed_app.assertion()
    assert keyed_app.exchange(code, client_assertion=used).status_code == 200
    code = keyed_app.code_for(person)

    replayed = keyed_app.exchange(code, client_assertion=used)
    forged = keyed_app.exchange(code, client_assertion=keyed_app.assertion(key=stranger))

    assert_error(replayed, "invalid_client", status=401, description_contains="used before")
    assert_error(forged, "invalid_client", status=401, description_contains="signature")
    assert keyed_app.exchange(code).status_code == 200
