"""The rules of the authorization and token endpoints (OIDC Core §3.1.2, RFC 6749, RFC 7636,
RFC 9700, RFC 9207), each told as what a person at a browser or an application would notice.

Every test here fails if the rule it names is taken out of op-proxy.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from html import unescape

import httpx
import pytest
from sqlalchemy import update

from op_proxy.security import token_digest
from op_proxy.storage.models import AuthorizationCode
from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, assert_error, verify_id_token
from tests.support.server import DEMO_SECRET_HASH, default_clients
from tests.support.stored import changed
from tests.support.user_handler import UserHandlerApp, an_editor

CALLBACK = "http://127.0.0.1:5000/callback"
OTHER_DEMO_CALLBACK = "http://localhost:5000/auth"  # demo's second registered redirect URI
POST_CALLBACK = "http://127.0.0.1:5001/callback"
SPA_CALLBACK = "http://127.0.0.1:5173/callback"
SECOND_CALLBACK = "http://127.0.0.1:5002/callback"
CONSENT_CALLBACK = "http://127.0.0.1:5003/callback"

VERIFIER = "dBjftJeZ4CVP-mJ92K5vk5vS0Ps1YdQbG6S4-hP8bhs"  # RFC 7636 Appendix B


def expire_code(server, code: str) -> None:
    """Move the code's expiry into the past, straight in the server's database."""
    assert changed(server, update(AuthorizationCode).where(AuthorizationCode.code_digest == token_digest(code))
                   .values(expires_at=int(time.time()) - 60)) == 1


def link_to_language(page: Page, code: str) -> str:
    match = re.search(rf'<a href="([^"]*)" hreflang="{code}"', page.html)
    assert match, "no language switch on the page"
    return page.url.split("/login/")[0] + unescape(match.group(1))


@pytest.fixture
def demo(server):
    return App(server.issuer, "demo", CALLBACK)


@pytest.fixture
def english_person(server):
    someone = Person(server.issuer, accept_language="en")
    yield someone
    someone.close()


# -- before the application is trusted: a page of ours, never a redirect -----------------------------

def test_an_unknown_application_gets_an_error_page_not_a_redirect(server, english_person):
    url = App(server.issuer, "no-such-app", CALLBACK).authorization_url()

    response = english_person.http.get(url)

    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")
    assert Page(url, 400, response.text).title == "Unknown application"


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:5000/callback/",
    "http://127.0.0.1:5000/callback/extra",
    "http://127.0.0.1:5000/callback?next=https://attacker.example/",
    "HTTP://127.0.0.1:5000/CALLBACK",
    "http://127.0.0.1:5000/Callback",
    "http://127.0.0.1:5999/callback",
    None,
], ids=["trailing-slash", "extra-path", "extra-query", "upper-case", "other-case", "other-port", "missing"])
def test_a_return_address_that_is_not_exactly_registered_gets_a_page_and_no_redirect(
        server, english_person, redirect_uri):
    # Even a request that is wrong in other ways must not be answered at an unverified address.
    url = App(server.issuer, "demo", redirect_uri).authorization_url(response_type="token")

    response = english_person.http.get(url)

    assert response.status_code == 400 and "location" not in response.headers
    assert Page(url, 400, response.text).title == "Invalid return address"


# -- once the return address is trusted, errors go back to it ---------------------------------------

@pytest.mark.parametrize("client_id,redirect_uri,params,error", [
    ("demo", CALLBACK, {"response_type": "token"}, "unsupported_response_type"),
    ("demo", CALLBACK, {"scope": "profile email"}, "invalid_scope"),
    ("demo", CALLBACK, {"code_challenge": VERIFIER, "code_challenge_method": "plain"}, "invalid_request"),
    ("demo-spa", SPA_CALLBACK, {"pkce": False}, "invalid_request"),
    ("demo", CALLBACK, {"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ("demo", CALLBACK, {"response_mode": "fragment"}, "invalid_request"),
], ids=["response-type-token", "scope-without-openid", "pkce-plain", "public-client-without-pkce",
        "request-object", "unknown-response-mode"])
def test_a_bad_request_from_a_trusted_application_goes_back_to_it_with_an_error(
        server, person, client_id, redirect_uri, params, error):
    app = App(server.issuer, client_id, redirect_uri, secret=None)

    arrival = person.visit(app.authorization_url(**params))

    app.assert_error_back(arrival, error)
    assert person.pages == []  # the person never saw a page of ours


# -- prompt, max_age and existing sessions ----------------------------------------------------------

def test_prompt_none_without_a_session_answers_login_required(server, person, demo):
    arrival = person.visit(demo.authorization_url(prompt="none"))

    demo.assert_error_back(arrival, "login_required")
    assert person.pages == []


def test_prompt_none_after_signing_in_returns_a_code_without_any_page(server, person, demo):
    demo.code_for(person)
    pages_before = len(person.pages)

    code = demo.code_from(person.visit(demo.authorization_url(prompt="none")))

    assert len(person.pages) == pages_before
    assert demo.exchange(code).status_code == 200


@pytest.mark.parametrize("params", [{"prompt": "login"}, {"max_age": "0"}], ids=["prompt-login", "max-age-0"])
def test_a_signed_in_person_is_asked_for_the_password_again_when_the_app_demands_it(server, person, demo, params):
    demo.code_for(person)

    page = person.visit(demo.authorization_url(**params))

    assert isinstance(page, Page) and page.has_password_form()
    code = demo.code_from(person.submit_password(page))
    assert demo.exchange(code).status_code == 200


# -- the sign-in page: hints, languages and a wrong password -----------------------------------------

def test_login_hint_prefills_the_username(server, person, demo):
    page = person.visit(demo.authorization_url(login_hint="demo"))

    assert page.has_password_form()
    assert page.forms()[0]["fields"]["username"] == "demo"


def test_ui_locales_en_shows_the_sign_in_page_in_english(server, person, demo):
    page = person.visit(demo.authorization_url(ui_locales="en"))

    assert page.title == "Sign in"
    assert ">Username<" in page.html and '<html lang="en">' in page.html


def test_a_thai_browser_gets_the_sign_in_page_in_thai_and_can_switch_to_english(server, person, demo):
    page = person.visit(demo.authorization_url())
    assert page.title == "เข้าสู่ระบบ" and '<html lang="th">' in page.html

    english = person.visit(link_to_language(page, "en"))

    assert english.title == "Sign in" and ">Username<" in english.html
    assert english.has_password_form()
    demo.code_from(person.submit_password(english))  # the switched page still signs the person in


def test_a_wrong_password_shows_the_form_again_with_an_error(server, english_person, demo):
    page = english_person.visit(demo.authorization_url())

    again = english_person.submit_password(page, password="not-the-password")

    assert isinstance(again, Page), "a wrong password sent the person somewhere"
    assert again.status == 401 and again.has_password_form()
    assert "Wrong username or password" in again.html
    demo.code_from(english_person.submit_password(again))  # the right password then works


# -- consent ----------------------------------------------------------------------------------------

def consent_page(someone: Person, app: App, **params) -> Page:
    return someone.consent_page(app.authorization_url(**params))


def shown_scopes(page: Page) -> list[str]:
    return re.findall(r'data-scope="([^"]*)"', page.html)


def test_denying_consent_sends_access_denied_back_to_the_application(make_server):
    server = make_server()
    app = App(server.issuer, "consenting-app", CONSENT_CALLBACK)
    someone = Person(server.issuer, accept_language="en")
    try:
        page = consent_page(someone, app, scope="openid profile email")
        assert page.title == "Allow Asks for consent to use your information?"
        assert shown_scopes(page) == ["openid", "profile", "email"]

        arrival = someone.submit(page, decision="deny")

        app.assert_error_back(arrival, "access_denied")
    finally:
        someone.close()


def test_allow_pressed_twice_at_once_gives_the_application_one_code(make_server):
    # The person presses Allow, the application's user handler is slow, they press it again: both
    # presses pass the page's own check and meet where the sign-in ends (signin.flow.end), once.
    def slow_editor(user: dict) -> dict:
        time.sleep(1)
        return an_editor(user)

    handler = UserHandlerApp("hr-secret", slow_editor)
    clients = [*default_clients(), {
        "client_id": "slow-app", "name": "Asks for consent", "client_secret_hash": DEMO_SECRET_HASH,
        "require_consent": True, "redirect_uris": [CONSENT_CALLBACK], "user_handler_endpoint": handler.url,
        "user_handler_secret_env": "SLOW_APP_API_SECRET"}]
    server = make_server(clients=clients, env={"SLOW_APP_API_SECRET": "hr-secret"})
    app = App(server.issuer, "slow-app", CONSENT_CALLBACK)
    someone = Person(server.issuer, accept_language="en")
    try:
        form = consent_page(someone, app, scope="openid email").forms()[0]
        with ThreadPoolExecutor(2) as both:
            answers = list(both.map(lambda _: someone.http.post(form["action"], data={**form["fields"],
                                                                                      "decision": "allow"}), range(2)))

        codes = [answer.headers["location"] for answer in answers if answer.status_code == 303]
        refused = [answer for answer in answers if answer.status_code == 400]
        assert len(codes) == 1 and len(refused) == 1 and "Sign-in already finished" in refused[0].text
        assert app.exchange(app.code_from(Arrival(codes[0]))).status_code == 200
        assert len(handler.received) == 2  # both asked the application; only one was answered with a code
    finally:
        someone.close()
        handler.stop()


def test_allowed_consent_is_remembered_until_the_application_asks_again(make_server):
    server = make_server()
    app = App(server.issuer, "consenting-app", CONSENT_CALLBACK)
    first, later = Person(server.issuer), Person(server.issuer)
    try:
        page = consent_page(first, app, scope="openid email")
        assert app.exchange(app.code_from(first.submit(page, decision="allow"))).status_code == 200

        # Another browser, the same person, the same scopes: password, then straight back.
        arrival = later.sign_in(app.authorization_url(scope="openid email"), consent=None)
        assert app.exchange(app.code_from(arrival)).status_code == 200
        assert not any('name="decision"' in p.html for p in later.pages)

        again = consent_page(later, app, scope="openid email", prompt="consent")
        assert shown_scopes(again) == ["openid", "email"]
    finally:
        first.close()
        later.close()


# -- the claims parameter and id_token_hint ---------------------------------------------------------

def test_the_claims_parameter_puts_a_requested_claim_in_the_id_token(server, person, demo):
    tokens = demo.sign_in(person, scope="openid", claims=json.dumps({"id_token": {"email": None}}))

    claims = verify_id_token(server.issuer, tokens["id_token"], "demo")
    assert claims["email"] == "somchai.j@example.ac.th"
    assert "name" not in claims  # only what was asked for


NESTED_1000_LEVELS = '{"id_token": {"email": ' + '{"a": ' * 998 + "null" + "}" * 1000
TOO_DEEP = '{"id_token": {"email": {"values": ' + "[" * 10 + "]" * 10 + "}}}"


@pytest.mark.parametrize("claims", [
    "{not json", '{"id_token": "email"}', '["id_token"]', NESTED_1000_LEVELS, TOO_DEEP,
    '{"id_token": {"email": {"value": NaN}}}', '{"userinfo": {"email": {"values": [Infinity, -Infinity]}}}',
    '{"id_token": {"email": {"value": "' + "x" * 9000 + '"}}}',
], ids=["not-json", "member-not-an-object", "not-an-object", "nested-1000-levels", "nested-too-deep", "NaN",
        "Infinity", "too-long"])
def test_a_malformed_claims_parameter_is_an_invalid_request(server, person, demo, claims):
    """A hostile page crafts the sign-in link: the application hears invalid_request, nobody gets a 500
    (a RecursionError for 1,000 levels; NaN, which is not JSON, refused later by MariaDB's JSON check)."""
    arrival = person.visit(demo.authorization_url(claims=claims))

    demo.assert_error_back(arrival, "invalid_request")
    assert "Traceback" not in server.log()


@pytest.fixture
def others_id_token(server, demo):
    other = Person(server.issuer, "other", "other-password")
    try:
        return demo.sign_in(other)["id_token"]
    finally:
        other.close()


def test_an_id_token_hint_for_someone_else_makes_the_person_sign_in_again(server, person, demo, others_id_token):
    demo.code_for(person)

    page = person.visit(demo.authorization_url(id_token_hint=others_id_token))

    assert isinstance(page, Page) and page.has_password_form()


def test_an_id_token_hint_for_someone_else_with_prompt_none_is_login_required(server, person, demo,
                                                                               others_id_token):
    demo.code_for(person)

    arrival = person.visit(demo.authorization_url(id_token_hint=others_id_token, prompt="none"))

    demo.assert_error_back(arrival, "login_required")


# -- the token endpoint: authorization codes --------------------------------------------------------

def test_a_replayed_code_fails_and_revokes_the_tokens_of_the_first_exchange(server, person, demo):
    code = demo.code_for(person)
    first = demo.exchange(code).json()
    assert demo.userinfo(first["access_token"]).status_code == 200

    assert_error(demo.exchange(code), "invalid_grant")

    userinfo = demo.userinfo(first["access_token"])
    assert userinfo.status_code == 401 and userinfo.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in userinfo.headers["WWW-Authenticate"]
    assert_error(demo.refresh(first["refresh_token"]), "invalid_grant")


def test_a_wrong_pkce_verifier_is_refused(server, person, demo):
    code = demo.code_for(person)

    assert_error(demo.exchange(code, code_verifier="x" * 43), "invalid_grant")


def test_a_missing_pkce_verifier_is_refused_when_a_challenge_was_sent(server, person, demo):
    code = demo.code_for(person)

    assert_error(demo.exchange(code, code_verifier=None), "invalid_grant")


def test_a_pkce_verifier_for_a_code_issued_without_a_challenge_is_refused(server, person, demo):
    code = demo.code_for(person, pkce=False)  # demo is confidential: PKCE is optional

    assert_error(demo.exchange(code), "invalid_grant")


def test_an_expired_code_is_refused(server, person, demo):
    code = demo.code_for(person)
    expire_code(server, code)

    assert_error(demo.exchange(code), "invalid_grant")


def test_a_code_issued_to_one_application_is_refused_to_another(server, person, demo):
    code = demo.code_for(person)

    another_app = App(server.issuer, "second-app", SECOND_CALLBACK)
    assert_error(another_app.exchange(code, redirect_uri=CALLBACK), "invalid_grant")


def test_a_code_is_refused_with_another_redirect_uri_than_the_authorization_request(server, person, demo):
    code = demo.code_for(person)

    assert_error(demo.exchange(code, redirect_uri=OTHER_DEMO_CALLBACK), "invalid_grant")  # registered, but not used


def test_a_mistyped_pkce_verifier_does_not_burn_the_code(server, person, demo):
    """node-oidc-provider's order: a code is checked before it is consumed, so the application that
    retries with the right verifier still gets its tokens, and they are not revoked as a replay."""
    code = demo.code_for(person)
    assert_error(demo.exchange(code, code_verifier="x" * 43), "invalid_grant")

    redeemed = demo.exchange(code)

    assert redeemed.status_code == 200, redeemed.text
    assert demo.userinfo(redeemed.json()["access_token"]).status_code == 200
    assert demo.refresh(redeemed.json()["refresh_token"]).status_code == 200


def test_a_leaked_code_tried_by_another_application_leaves_the_real_redemption_working(server, person, demo):
    code = demo.code_for(person)
    another_app = App(server.issuer, "second-app", SECOND_CALLBACK)
    assert_error(another_app.exchange(code, redirect_uri=CALLBACK), "invalid_grant")
    assert_error(demo.exchange(code, redirect_uri=OTHER_DEMO_CALLBACK), "invalid_grant")

    redeemed = demo.exchange(code)

    assert redeemed.status_code == 200, redeemed.text
    assert demo.userinfo(redeemed.json()["access_token"]).status_code == 200
    assert_error(demo.exchange(code), "invalid_grant")  # once redeemed, a second use still fails ...
    assert demo.userinfo(redeemed.json()["access_token"]).status_code == 401  # ... and revokes what it gave


# -- the token endpoint: client authentication and grant types ---------------------------------------

def test_a_wrong_client_secret_is_refused_with_401(server, person, demo):
    code = demo.code_for(person)

    assert_error(replace(demo, secret="not-the-secret").exchange(code), "invalid_client", status=401)


def test_an_unknown_client_is_refused_with_401(server, person, demo):
    code = demo.code_for(person)

    assert_error(App(server.issuer, "no-such-app", CALLBACK).exchange(code), "invalid_client", status=401)


def test_a_client_must_authenticate_with_its_registered_method(server, person):
    poster = App(server.issuer, "demo-post", POST_CALLBACK, auth="client_secret_post")
    code = poster.code_for(person)

    assert_error(replace(poster, auth="client_secret_basic").exchange(code), "invalid_client", status=401)


RFC_6749_DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]+")  # §4.1.2.1 and §5.2


def test_an_error_description_never_repeats_what_a_client_sent_outside_rfc_6749s_characters(server, person, demo):
    """A hostile page puts quotes, a backslash, a line break and Thai into the prompt of a sign-in
    link, and a script repeats an oddly named parameter at /token: the application's error parser
    (and the log or page it writes the description into) only ever gets RFC 6749's characters."""
    arrival = person.visit(demo.authorization_url(prompt='login "><img src=x>\\\nเข้าสู่ระบบ'))

    demo.assert_error_back(arrival, "invalid_request")
    assert RFC_6749_DESCRIPTION.fullmatch(arrival.params["error_description"]), arrival.params

    odd = 'scope"\\\r\nX-Injected: 1 ภาษาไทย'
    response = httpx.post(server.issuer + "/token", auth=("demo", "demo-secret"),
                          data={"grant_type": "authorization_code", odd: ["1", "2"]})
    body = assert_error(response, "invalid_request")
    assert RFC_6749_DESCRIPTION.fullmatch(body["error_description"]), body

    response = demo.token({"grant_type": 'password" \\ ' + "ก" * 500})
    body = assert_error(response, "unsupported_grant_type")
    assert RFC_6749_DESCRIPTION.fullmatch(body["error_description"]), body
    assert len(body["error_description"]) <= 200


def test_an_unsupported_grant_type_is_refused(server, demo):
    response = demo.token({"grant_type": "password", "username": "demo", "password": "demo"})

    assert_error(response, "unsupported_grant_type")


def test_token_responses_are_never_cached(server, person, demo):
    tokens = demo.exchange(demo.code_for(person))
    refreshed = demo.refresh(tokens.json()["refresh_token"])
    refused = demo.exchange("no-such-code")

    for response in (tokens, refreshed, refused):
        assert response.headers["Cache-Control"] == "no-store"
    assert tokens.status_code == refreshed.status_code == 200 and refused.status_code == 400


# -- the token endpoint: refresh tokens -------------------------------------------------------------

def test_refresh_tokens_rotate_and_reuse_of_an_old_one_revokes_the_whole_family(server, person, demo):
    old = demo.sign_in(person)["refresh_token"]
    rotated = demo.refresh(old)
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != old

    assert_error(demo.refresh(old), "invalid_grant")

    assert_error(demo.refresh(new["refresh_token"]), "invalid_grant")
    assert demo.userinfo(new["access_token"]).status_code == 401


def test_a_refresh_cannot_widen_the_scope(server, person, demo):
    refresh_token = demo.sign_in(person, scope="openid profile")["refresh_token"]

    response = demo.refresh(refresh_token, scope="openid profile email")

    assert_error(response, "invalid_scope")


def test_a_refresh_that_repeats_the_original_request_scope_is_answered(server, person, demo):
    # Authlib and others send the scope they first asked for with every refresh. A value op-proxy
    # never grants (offline_access: refresh tokens come anyway) was dropped at /authorize as RFC 6749
    # §3.3 allows; repeating it must not turn the refresh into an error.
    tokens = demo.sign_in(person, scope="openid profile offline_access")
    assert tokens["scope"] == "openid profile"

    response = demo.refresh(tokens["refresh_token"], scope="openid profile offline_access")

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid profile"
    assert_error(demo.refresh(response.json()["refresh_token"], scope="openid email offline_access"),
                 "invalid_scope")  # a scope op-proxy grants, not granted here, is still a widening


def test_a_refused_wider_scope_refresh_leaves_the_refresh_token_usable(server, person, demo):
    refresh_token = demo.sign_in(person, scope="openid profile")["refresh_token"]
    assert_error(demo.refresh(refresh_token, scope="openid profile email"), "invalid_scope")

    # No new token was issued, so the app keeps (RFC 6749 §6) and retries the one it has.
    retried = demo.refresh(refresh_token)

    assert retried.status_code == 200, retried.text
    assert retried.json()["scope"] == "openid profile"
