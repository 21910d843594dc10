"""One browser, one session; the person an application asks for; consent that covers every claim
asked for; and a max_age that is a number. Each told as what a person or an application notices.

Every test here fails if the rule it names is taken out of op-proxy.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest

from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, assert_error, discovery

CONSENT_CALLBACK = "http://127.0.0.1:5003/callback"
DEMO_HOME = "http://127.0.0.1:5000/"


def assert_tokens_dead(app: App, tokens: dict) -> None:
    assert app.userinfo(tokens["access_token"]).status_code == 401
    assert_error(app.refresh(tokens["refresh_token"]), "invalid_grant")


def assert_tokens_alive(app: App, tokens: dict) -> None:
    assert app.userinfo(tokens["access_token"]).status_code == 200


def sign_out(person: Person, server, tokens: dict) -> None:
    logout = discovery(server.issuer)["end_session_endpoint"] + "?" + urlencode(
        {"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": DEMO_HOME})
    assert isinstance(person.visit(logout), Arrival)


def sign_in_again(person: Person, app: App, username: str = "demo", password: str = "demo", **params):
    """The application demands a fresh sign-in; the person types their password (or someone else's)."""
    page = person.visit(app.authorization_url(**params))
    assert isinstance(page, Page) and page.has_password_form()
    return person.submit_password(page, username, password)


@pytest.fixture
def demo(server):
    return App(server.issuer, scope="openid profile")


@pytest.fixture
def someone_else(server):
    other = Person(server.issuer, "other", "other-password")
    yield other
    other.close()


# -- one browser, one session ------------------------------------------------------------------------

@pytest.mark.parametrize("params", [{"prompt": "login"}, {"max_age": "0"}], ids=["prompt-login", "max-age-0"])
def test_signing_out_after_signing_in_again_ends_the_tokens_of_both_sign_ins(server, person, demo, params):
    first = demo.sign_in(person)
    second = demo.tokens_for(sign_in_again(person, demo, **params))

    sign_out(person, server, second)

    assert_tokens_dead(demo, first)
    assert_tokens_dead(demo, second)
    assert demo.id_token_claims(second)["sid"] == demo.id_token_claims(first)["sid"]  # one session, renewed


def test_when_someone_else_signs_in_at_the_same_browser_the_first_persons_tokens_end(server, person, demo):
    first = demo.sign_in(person)

    theirs = demo.tokens_for(sign_in_again(person, demo, "other", "other-password", prompt="login"))

    assert demo.userinfo(theirs["access_token"]).json()["name"] == "สมหญิง รักเรียน"
    assert demo.id_token_claims(theirs)["sid"] != demo.id_token_claims(first)["sid"]
    assert_tokens_dead(demo, first)
    sign_out(person, server, theirs)
    assert_tokens_dead(demo, theirs)


# -- the person the application asks for -------------------------------------------------------------

@pytest.fixture
def others_subject(server, someone_else) -> str:
    app = App(server.issuer, scope="openid profile")
    return app.id_token_claims(app.sign_in(someone_else))["sub"]


@pytest.fixture
def others_id_token(server, someone_else) -> str:
    app = App(server.issuer, scope="openid profile")
    return app.sign_in(someone_else)["id_token"]


def test_signing_in_as_someone_other_than_the_id_token_hint_names_gives_the_app_login_required(
        server, person, demo, others_id_token):
    arrival = person.sign_in(demo.authorization_url(id_token_hint=others_id_token))

    assert any(page.has_password_form() for page in person.pages)  # the person did sign in, as demo
    demo.assert_error_back(arrival, "login_required")


def test_signing_in_as_someone_other_than_the_requested_sub_gives_the_app_login_required(
        server, person, demo, others_subject):
    claims = json.dumps({"id_token": {"sub": {"value": others_subject}}})

    arrival = person.sign_in(demo.authorization_url(claims=claims))

    demo.assert_error_back(arrival, "login_required")


def test_a_signed_in_person_is_asked_to_sign_in_when_the_app_asks_for_someone_elses_sub(
        server, person, demo, others_subject):
    demo.sign_in(person)
    claims = json.dumps({"id_token": {"sub": {"value": others_subject}}})

    page = person.visit(demo.authorization_url(claims=claims))

    assert isinstance(page, Page) and page.has_password_form(), "no chance to sign in as the person asked for"
    arrival = person.submit_password(page, "other", "other-password")
    assert demo.id_token_claims(demo.tokens_for(arrival))["sub"] == others_subject


def test_the_person_the_app_asked_for_by_hint_and_by_sub_gets_a_code(server, person, demo):
    own = demo.sign_in(person)
    subject = demo.id_token_claims(own)["sub"]
    claims = json.dumps({"id_token": {"sub": {"value": subject}}})

    arrival = sign_in_again(person, demo, prompt="login", id_token_hint=own["id_token"], claims=claims)

    assert demo.id_token_claims(demo.tokens_for(arrival))["sub"] == subject


# -- consent covers the claims asked for one by one ---------------------------------------------------

def consent_page(someone: Person, app: App, **params) -> Page:
    return someone.consent_page(app.authorization_url(**params))


def shown_items(page: Page) -> list[str]:
    return [re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li data-scope=[^>]*>(.*?)</li>", page.html)]


def asked_for(*names: str) -> str:
    return json.dumps({"id_token": {name: None for name in names}})


@pytest.mark.parametrize("language, expected", [
    ("en", ["Know who you are", "Your e-mail address", "Your address", "The groups you belong to"]),
    ("th", ["ทราบว่าคุณเป็นใคร", "ที่อยู่อีเมลของคุณ", "ที่อยู่ของคุณ", "กลุ่มที่คุณสังกัด"]),
])
def test_the_consent_page_names_the_claims_asked_for_one_by_one(make_server, language, expected):
    server = make_server()
    app = App(server.issuer, "consenting-app", CONSENT_CALLBACK, scope="openid profile")
    someone = Person(server.issuer, accept_language=language)
    try:
        page = consent_page(someone, app, scope="openid", claims=asked_for("email", "address", "groups"))

        assert shown_items(page) == expected
    finally:
        someone.close()


def test_claims_beyond_what_the_person_allowed_make_the_app_ask_again(make_server):
    server = make_server()
    app = App(server.issuer, "consenting-app", CONSENT_CALLBACK, scope="openid profile")
    someone = Person(server.issuer, accept_language="en")
    try:
        page = consent_page(someone, app, scope="openid", claims=asked_for("email", "groups"))
        allowed = app.tokens_for(someone.submit(page, decision="allow"))
        assert app.id_token_claims(allowed)["groups"] == ["staff", "developer"]

        # What was allowed is remembered: the same claims come back without a page ...
        again = someone.visit(app.authorization_url(scope="openid", claims=asked_for("email"), prompt="none"))
        assert app.id_token_claims(app.tokens_for(again))["email"] == "somchai.j@example.ac.th"

        # ... but the department (never allowed) is not released silently, ...
        silent = someone.visit(app.authorization_url(scope="openid", claims=asked_for("department"), prompt="none"))
        app.assert_error_back(silent, "consent_required")

        # ... the person is asked about it.
        asked = consent_page(someone, app, scope="openid", claims=asked_for("department"))
        assert shown_items(asked) == ["Know who you are", "Your department, position and campus"]
    finally:
        someone.close()


# -- max_age is a number of seconds, in ASCII digits ---------------------------------------------------

@pytest.mark.parametrize("max_age", ["²", "١٠", "１０"], ids=["superscript-two", "arabic-indic-ten", "fullwidth-ten"])
def test_a_max_age_that_is_not_plain_digits_goes_back_to_the_app_as_invalid_request(server, person, demo, max_age):
    arrival = person.visit(demo.authorization_url(max_age=max_age))

    demo.assert_error_back(arrival, "invalid_request")
    assert person.pages == []  # the person never saw a page of ours, an error page least of all


# -- where the sign-in pages' forms may lead --------------------------------------------------------

def form_targets(person: Person, page: Page) -> str:
    policy = person.http.get(page.url).headers["content-security-policy"]
    return next(part.strip() for part in policy.split(";") if part.strip().startswith("form-action"))


def test_the_password_and_consent_forms_lead_only_to_op_proxy_and_the_application(make_server):
    """A form an injected tag planted on these pages cannot send the person's password or decision
    anywhere else: the browser lets their answers go only to op-proxy and to the application."""
    server = make_server()
    app = App(server.issuer, "consenting-app", CONSENT_CALLBACK, scope="openid profile")
    someone = Person(server.issuer)
    try:
        password_page = someone.visit(app.authorization_url())
        assert isinstance(password_page, Page) and password_page.has_password_form()
        assert form_targets(someone, password_page) == "form-action 'self' http://127.0.0.1:5003"

        consent = someone.submit_password(password_page)
        assert isinstance(consent, Page) and 'name="decision"' in consent.html
        assert form_targets(someone, consent) == "form-action 'self' http://127.0.0.1:5003"

        arrival = someone.submit(consent, decision="allow")
        assert isinstance(arrival, Arrival) and arrival.url.startswith(CONSENT_CALLBACK)
    finally:
        someone.close()
