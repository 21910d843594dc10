"""People sign in through real upstreams — Node's certified oidc-provider playing ThaID (ES256,
client_secret_basic only, no ``iss`` in the callback), PSU SSO (authentik: per-app issuer, HS256)
and Google — and the app gets op-proxy's own tokens with the mapped Thai claims and its role.
A misbehaving upstream (a tampering proxy in front of ThaID) is refused every time."""

from __future__ import annotations

import json
import re
from html import unescape

import httpx
import pytest

from tests.support.peers import require_peer
from tests.support.person import Arrival, Page, Person
from tests.support.rp import App, verify_id_token
from tests.support.server import DEMO_SECRET_HASH, OpProxyServer, default_clients, free_port, write_config
from tests.support.tampering import TamperingProxy, split_jwt
from tests.support.upstream import (
    DEFAULT_PSU_ACCOUNTS,
    Upstream,
    generate_ec_jwks,
    google_config,
    node_available,
    psu_account,
    psu_config,
    thaid_account,
    thaid_config,
)
from tests.support.user_handler import UserHandlerApp

PID = "1100700000019"
GMAIL = "somchai.jaidee@gmail.com"
# A PSU person who happens to use the same e-mail address as the Google account.
SAME_EMAIL_SUB, SAME_EMAIL_CLAIMS = psu_account("gmail.user", psu_id="6400003", email=GMAIL)
APP_API_SECRET = "app-api-secret-0123456789"
# authentik's generated secrets are long; HS256 needs at least 256 bits of key (RFC 7518 §3.2)
UPSTREAM_SECRETS = {"THAID_SECRET": "thaid-client-secret", "PSU_SECRET": "psu-client-secret-" + "x" * 32,
                    "GOOGLE_SECRET": "google-client-secret"}


def hr_record(user: dict) -> dict:
    """What the HR app keeps of a person, and their role there."""
    return {"id": 123, "user_id": user["id"], "email": user["email"], "name": user["name"], "role": "editor"}


def clients(handler: UserHandlerApp) -> list[dict]:
    return default_clients() + [
        {"client_id": "hr-app", "name": "HR", "client_secret_hash": DEMO_SECRET_HASH,
         "redirect_uris": ["http://127.0.0.1:5100/callback"], "user_handler_endpoint": handler.url,
         "user_handler_secret_env": "HR_APP_API_SECRET"},
        {"client_id": "registry-app", "name": "Civil registry", "client_secret_hash": DEMO_SECRET_HASH,
         "allowed_scopes": ["openid", "profile", "thaid"], "allowed_upstreams": ["thaid"],
         "redirect_uris": ["http://127.0.0.1:5101/callback"]},
    ]


def upstream_sections(thaid_issuer: str, psu_issuer: str, google_issuer: str) -> str:
    return f"""
[upstreams.thaid]
preset = "thaid"
issuer = "{thaid_issuer}"
discovery_url = "{thaid_issuer}/.well-known/openid-configuration"
introspection_endpoint = "{thaid_issuer}/api/v2/oauth2/introspect/"
introspect_at_sign_in = true
client_id = "op-proxy"
client_secret_env = "THAID_SECRET"

[upstreams.psu]
preset = "psu"
issuer = "{psu_issuer}"
client_id = "op-proxy"
client_secret_env = "PSU_SECRET"
callback_path = "/public/callback.php"

[upstreams.google]
preset = "google"
issuer = "{google_issuer}"
issuer_aliases = []
authorize_params = {{}}
client_id = "op-proxy.apps.googleusercontent.com"
client_secret_env = "GOOGLE_SECRET"
token_endpoint_auth_method = "client_secret_basic"
"""


class Federation:
    """op-proxy with ThaID (behind a tampering proxy), PSU and Google upstreams and an app's user API."""

    def __init__(self, directory):
        self.handler = UserHandlerApp(APP_API_SECRET, hr_record)
        op_port, proxy_port = free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{op_port}"
        callback = self.issuer + "/callback/"
        thaid = thaid_config(free_port(), "op-proxy", UPSTREAM_SECRETS["THAID_SECRET"], callback + "thaid",
                             issuer=f"http://127.0.0.1:{proxy_port}")
        self.thaid = Upstream(thaid, directory).start()
        self.proxy = TamperingProxy(thaid, port=proxy_port).start()
        self.psu = Upstream(psu_config(free_port(), "op-proxy", UPSTREAM_SECRETS["PSU_SECRET"],
                                       self.issuer + "/public/callback.php",
                                       {**DEFAULT_PSU_ACCOUNTS, SAME_EMAIL_SUB: SAME_EMAIL_CLAIMS}),
                            directory).start()
        self.google = Upstream(google_config(free_port(), "op-proxy.apps.googleusercontent.com",
                                             UPSTREAM_SECRETS["GOOGLE_SECRET"], callback + "google"),
                               directory).start()
        config = write_config(directory, port=op_port, database_url=f"sqlite+aiosqlite:///{directory}/op.sqlite3",
                              clients=clients(self.handler),
                              extra=upstream_sections(self.proxy.url, self.psu.issuer, self.google.issuer))
        self.op_proxy = OpProxyServer(config, op_port, env={**UPSTREAM_SECRETS, "HR_APP_API_SECRET": APP_API_SECRET})
        self.op_proxy.start()

    def person(self, account: str | None = None) -> Person:
        return Person(self.issuer, upstreams=(self.proxy.url, self.psu.base, self.google.base),
                      upstream_account=account)

    def stop(self):
        for part in (self.op_proxy, self.thaid, self.psu, self.google, self.proxy, self.handler):
            part.stop()


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    require_peer("Node.js", node_available() is not None,
                 "Node.js with tests/peers/node_modules (run `make peers`) is needed for the upstreams")
    world = Federation(tmp_path_factory.mktemp("federation"))
    yield world
    world.stop()


@pytest.fixture(autouse=True)
def honest_upstream(request):
    yield
    if "federation" in request.fixturenames:
        world = request.getfixturevalue("federation")
        world.proxy.scenario = None
        world.handler.failing = False


def app_for(world, client_id="hr-app", redirect_uri="http://127.0.0.1:5100/callback",
            scope="openid profile email org groups") -> App:
    return App(world.issuer, client_id, redirect_uri, scope=scope, nonce="n-fed")


# -- signing in through each upstream ------------------------------------------------------------------

def test_thaid_sign_in_through_the_chooser_gives_the_app_mapped_thai_claims_and_its_role(federation):
    world, person = federation, federation.person(PID)
    app = app_for(world)
    chooser = person.visit(app.authorization_url())
    assert isinstance(chooser, Page) and "ThaID" in chooser.html and "PSU Passport" in chooser.html

    arrival = person.sign_in(chooser.url + "/thaid")  # the person clicks "ThaID"

    tokens = app.tokens_for(arrival)
    claims = verify_id_token(world.issuer, tokens["id_token"], "hr-app", nonce="n-fed")
    userinfo = app.userinfo(tokens["access_token"]).json()
    assert userinfo["role"] == "editor" and PID not in json.dumps(userinfo)
    assert claims["name"] == "นายสมชาย ใจดี"
    assert claims["given_name"] == "สมชาย" and claims["family_name"] == "ใจดี"
    assert claims["role"] == "editor" and claims["app_user"]["id"] == 123
    assert "pid" not in claims and PID not in json.dumps(claims)  # hr-app is not allowed the national ID
    assert claims["sub"] != PID
    sent = world.handler.received[-1]
    assert sent["content_type"] == "application/json"
    assert sent["normalizedUser"]["firstName"] == "สมชาย"
    assert PID not in json.dumps(sent, ensure_ascii=False)


def test_a_client_allowed_the_thaid_scope_gets_the_national_id_and_english_names(federation):
    world, person = federation, federation.person(PID)
    app = app_for(world, "registry-app", "http://127.0.0.1:5101/callback", scope="openid profile thaid")
    arrival = person.sign_in(app.authorization_url())  # allowed ThaID only: no chooser
    token = app.tokens_for(arrival)
    claims = verify_id_token(world.issuer, token["id_token"], "registry-app")
    assert claims["pid"] == PID and claims["name_en"] == "Mr. Somchai Jaidee" and claims["ial"] == "2.3"
    assert claims["birthdate"] == "1990-05-17" and claims["gender"] == "male"
    userinfo = app.userinfo(token["access_token"]).json()
    assert userinfo["pid"] == PID and userinfo["title_en"] == "Mr."


def test_psu_sign_in_fills_the_organisation_fields_from_an_hs256_per_app_issuer(federation):
    world, person = federation, federation.person(None)
    sub = next(iter(world.psu.config["accounts"]))
    person.upstream_account = sub
    app = app_for(world)
    arrival = person.sign_in(app.authorization_url(idp_hint="psu"))
    claims = verify_id_token(world.issuer, app.tokens_for(arrival)["id_token"], "hr-app")
    assert claims["name"] == "สมชาย ใจดี" and claims["preferred_username"] == "somchai.j"
    assert claims["department"] == "ภาควิชาวิศวกรรมคอมพิวเตอร์" and claims["campus_id"] == "C01"
    assert claims["user_id"] == "6400001" and claims["groups"] == ["staff", "developer"]
    assert world.handler.received[-1]["normalizedUser"]["officeName"] == "คณะวิศวกรรมศาสตร์"


def test_google_sign_in_with_kc_idp_hint_and_people_are_never_matched_by_email(federation):
    world = federation
    app = app_for(world)
    google_sub = next(iter(world.google.config["accounts"]))
    person = world.person(google_sub)
    claims = verify_id_token(world.issuer, app.tokens_for(person.sign_in(
        app.authorization_url(kc_idp_hint="google")))["id_token"], "hr-app")
    assert claims["email"] == GMAIL and claims["name"] == "Somchai Jaidee"

    # The same e-mail address at PSU is another person to op-proxy.
    other = world.person(SAME_EMAIL_SUB)
    psu_id_token = app.tokens_for(other.sign_in(app.authorization_url(idp_hint="psu")))["id_token"]
    psu_claims = verify_id_token(world.issuer, psu_id_token, "hr-app")
    assert psu_claims["email"] == GMAIL and psu_claims["sub"] != claims["sub"]


def test_an_upstream_the_client_is_not_allowed_is_refused(federation):
    world, person = federation, federation.person(None)
    app = app_for(world, "registry-app", "http://127.0.0.1:5101/callback", scope="openid profile thaid")
    page = person.visit(app.authorization_url(idp_hint="google"))
    assert isinstance(page, Page) and page.status == 403


# -- a misbehaving upstream --------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["bad_signature", "unknown_kid", "wrong_iss", "wrong_aud", "expired",
                                      "wrong_nonce", "alg_none", "hs256_with_public_key"])
def test_an_id_token_that_does_not_verify_is_refused(federation, scenario):
    world, person = federation, federation.person(PID)
    world.proxy.scenario = scenario
    app = app_for(world)
    page = person.sign_in(app.authorization_url(idp_hint="thaid"))
    assert isinstance(page, Page), "a tampered ID token signed the person in"
    assert page.title == "ยังไม่ได้เข้าสู่ระบบ" and "ลองอีกครั้ง" in page.html
    assert world.proxy.exchanges[-1][0] == scenario  # the upstream's answer really was tampered with


def test_thaid_is_asked_whether_its_token_is_still_active_and_an_inactive_one_is_refused(federation):
    world, app = federation, app_for(federation)
    asked = len([path for method, path, _status in world.proxy.requests
                 if method == "POST" and path.startswith("/api/v2/oauth2/introspect/")])
    assert isinstance(world.person(PID).sign_in(app.authorization_url(idp_hint="thaid")), Arrival)
    assert len([path for method, path, status in world.proxy.requests
                if method == "POST" and path.startswith("/api/v2/oauth2/introspect/") and status == 200]) == asked + 1

    world.proxy.scenario = "introspection_inactive"
    page = world.person(PID).sign_in(app.authorization_url(idp_hint="thaid"))
    assert isinstance(page, Page) and page.title == "ยังไม่ได้เข้าสู่ระบบ"
    assert world.proxy.exchanges[-1] == ("introspection_inactive", True, False)


def test_apps_learn_when_the_person_really_authenticated_at_the_upstream(federation):
    world, app = federation, app_for(federation)
    person = world.person(PID)
    world.proxy.scenario = "old_auth_time"  # ThaID answers from a sign-in two hours old
    claims = verify_id_token(world.issuer, app.tokens_for(person.sign_in(
        app.authorization_url(idp_hint="thaid")))["id_token"], "hr-app", nonce="n-fed")
    upstream_auth_time = split_jwt(world.proxy.exchanges[-1][2])[1]["auth_time"]
    assert claims["auth_time"] == upstream_auth_time

    # An app wanting a sign-in from the last hour is not given that old one through op-proxy's session:
    # the person goes back to ThaID.
    world.proxy.scenario = None
    to_thaid = sum(1 for method, path, _status in world.proxy.requests if path.startswith("/api/v2/oauth2/auth/"))
    claims = verify_id_token(world.issuer, app.tokens_for(person.sign_in(
        app.authorization_url(idp_hint="thaid", max_age=3600)))["id_token"], "hr-app", nonce="n-fed")
    assert sum(1 for method, path, _status in world.proxy.requests
               if path.startswith("/api/v2/oauth2/auth/")) == to_thaid + 1
    assert claims["auth_time"] > upstream_auth_time + 3600


def test_a_replayed_callback_and_an_unknown_state_are_refused(federation):
    world, person = federation, federation.person(PID)
    app = app_for(world)
    person.stop_at = world.issuer + "/callback/"  # the browser pauses on its way back from ThaID
    callback = person.sign_in(app.authorization_url(idp_hint="thaid"))
    assert isinstance(callback, Arrival) and callback.url.startswith(world.issuer + "/callback/thaid?")
    person.stop_at = None

    first = person.visit(callback.url)
    assert isinstance(first, Arrival) and first.params["code"]
    replay = person.http.get(callback.url)
    assert replay.status_code == 400 and "ไม่พบรายการเข้าสู่ระบบ" in replay.text
    forged = person.http.get(world.issuer + "/callback/thaid?code=abc&state=made-up")
    assert forged.status_code == 400


def test_a_callback_arriving_at_another_upstreams_path_is_refused(federation):
    world, person = federation, federation.person(PID)
    app = app_for(world)
    person.stop_at = world.issuer + "/callback/"
    callback = person.sign_in(app.authorization_url(idp_hint="thaid"))
    assert callback.url.startswith(world.issuer + "/callback/thaid?")
    mixed_up = person.http.get(callback.url.replace("/callback/thaid?", "/callback/google?"))
    assert mixed_up.status_code == 400 and "การเข้าสู่ระบบถูกปฏิเสธ" in mixed_up.text
    assert "code=" not in mixed_up.headers.get("location", "")


def test_upstream_errors_end_on_a_page_that_says_what_happened(federation):
    world, person = federation, federation.person(PID)
    app = app_for(world)
    person.stop_at = world.issuer + "/callback/"
    callback = person.sign_in(app.authorization_url(idp_hint="thaid"))
    state = callback.params["state"]
    cancelled = person.http.get(f"{world.issuer}/callback/thaid?error=user_denied&state={state}")
    assert cancelled.status_code == 400 and "คุณยกเลิกการเข้าสู่ระบบที่ ThaID" in cancelled.text
    retry = cancelled.text.split('class="button" href="')[1].split('"')[0]
    assert person.http.get(world.issuer + retry).status_code == 303  # the way back still works

    callback = person.sign_in(app.authorization_url(idp_hint="thaid"))
    duplicate = person.http.get(f"{world.issuer}/callback/thaid?error=duplicate_request"
                                f"&state={callback.params['state']}")
    assert "ถูกส่งไปแล้ว" in duplicate.text


def test_a_failing_user_handler_ends_the_sign_in_on_a_clear_page(federation):
    world, person = federation, federation.person(PID)
    world.handler.failing = True
    app = app_for(world)
    page = person.sign_in(app.authorization_url(idp_hint="thaid"))
    assert isinstance(page, Page) and page.status == 502
    assert page.title == "แอปพลิเคชันไม่สามารถให้คุณเข้าสู่ระบบได้"


def test_the_national_id_never_reaches_the_log(federation):
    world = federation
    person = world.person(PID)
    app = app_for(world, "registry-app", "http://127.0.0.1:5101/callback", scope="openid profile thaid")
    app.tokens_for(person.sign_in(app.authorization_url()))
    assert "audit event=sign_in outcome=success" in world.op_proxy.log()
    assert PID not in world.op_proxy.log()


def test_an_unreachable_upstream_says_so(tmp_path):
    port = free_port()
    config = write_config(tmp_path, port=port, database_url=f"sqlite+aiosqlite:///{tmp_path}/op.sqlite3",
                          extra=upstream_sections(f"http://127.0.0.1:{free_port()}", "http://127.0.0.1:9/x",
                                                  "http://127.0.0.1:9"))
    server = OpProxyServer(config, port, env=UPSTREAM_SECRETS).start()
    try:
        person = Person(server.issuer)
        url = App(server.issuer).authorization_url(idp_hint="thaid")
        page = person.visit(url)
        assert isinstance(page, Page) and page.status == 502
        assert "ไม่สามารถติดต่อ ThaID" in page.html
    finally:
        server.stop()


def test_a_userinfo_answer_about_someone_else_is_refused(tmp_path):
    """Google's userinfo is fetched after the ID token verifies; its ``sub`` must be the ID token's."""
    op_port, proxy_port = free_port(), free_port()
    google = Upstream(google_config(free_port(), "op-proxy.apps.googleusercontent.com",
                                    UPSTREAM_SECRETS["GOOGLE_SECRET"], f"http://127.0.0.1:{op_port}/callback/google",
                                    issuer=f"http://127.0.0.1:{proxy_port}"), tmp_path).start()
    proxy = TamperingProxy(google.config, port=proxy_port).start()
    config = write_config(tmp_path, port=op_port, database_url=f"sqlite+aiosqlite:///{tmp_path}/op.sqlite3",
                          extra=upstream_sections("http://127.0.0.1:9", "http://127.0.0.1:9", proxy.url))
    server = OpProxyServer(config, op_port, env=UPSTREAM_SECRETS).start()
    try:
        app = App(server.issuer)
        account = next(iter(google.config["accounts"]))

        def sign_in():
            url = app.authorization_url(idp_hint="google")
            return Person(server.issuer, upstreams=(proxy.url, google.base), upstream_account=account).sign_in(url)

        assert isinstance(sign_in(), Arrival)  # the honest answer signs the person in
        proxy.scenario = "userinfo_other_sub"
        page = sign_in()
        assert isinstance(page, Page) and page.title == "ยังไม่ได้เข้าสู่ระบบ"
        assert proxy.exchanges[-1] == ("userinfo_other_sub", account, "someone-else")
    finally:
        for part in (server, proxy, google):
            part.stop()


def test_thaid_address_may_be_a_string_or_an_object():
    from op_proxy.config import UpstreamSettings, parse_oidc_upstream
    from op_proxy.config import _Reader as Reader
    from op_proxy.upstreams.thaid import ThaidConnector

    table = {"issuer": "https://imauth.example", "client_id": "x", "client_secret": "s",
             "passthrough_claims": ["address"], "claim_mapping": {"name": "name"}}
    settings = UpstreamSettings("thaid", "thaid", {"th": "ThaID"}, oidc=parse_oidc_upstream(
        Reader("test", table, "upstreams.thaid"), "thaid"))
    connector = ThaidConnector(settings, issuer="https://op.example", http=httpx.AsyncClient())
    as_text = connector.normalized_profile(thaid_account(PID))
    assert as_text["address"] == {"formatted": "99/9 หมู่ 1 ถนนกาญจนวนิชย์ ตำบลคอหงส์ อำเภอหาดใหญ่ จังหวัดสงขลา 90110"}
    as_object = connector.normalized_profile(thaid_account(PID, address={"locality": "หาดใหญ่", "postal_code": "90110"}))
    assert as_object["address"] == {"locality": "หาดใหญ่", "postal_code": "90110"}


def test_a_key_rotation_at_the_upstream_is_picked_up_but_unknown_kids_cost_one_fetch_a_minute(tmp_path):

    world = Federation(tmp_path)  # its own op-proxy: no earlier test has used this minute's refetch
    try:
        rotation_then_forgeries(world)
    finally:
        world.stop()


def rotation_then_forgeries(world):
    from tests.support.upstream import generate_ec_jwks

    app = app_for(world)
    assert isinstance(world.person(PID).sign_in(app.authorization_url(idp_hint="thaid")), Arrival)

    world.thaid.stop()  # ThaID rotates its signing key
    world.thaid.config["jwks"] = generate_ec_jwks()
    world.thaid.start()
    arrival = world.person(PID).sign_in(app.authorization_url(idp_hint="thaid"))
    assert isinstance(arrival, Arrival), "a token signed with ThaID's new key was refused"

    jwks_fetches = sum(1 for _m, path, _s in world.proxy.requests if path.startswith("/jwks"))
    world.proxy.scenario = "unknown_kid"
    for _attempt in range(3):
        page = world.person(PID).sign_in(app.authorization_url(idp_hint="thaid"))
        assert isinstance(page, Page) and page.title == "ยังไม่ได้เข้าสู่ระบบ"
    assert sum(1 for _m, path, _s in world.proxy.requests if path.startswith("/jwks")) == jwks_fetches


# -- an app demanding a fresh sign-in ---------------------------------------------------------------------

def upstream_login_forms_shown(person: Person, upstream: Upstream) -> int:
    """How many times the upstream asked this person to sign in (its login form, not a silent pass)."""
    return sum(1 for page in person.pages if page.url.startswith(upstream.base)
               and any(form["fields"].get("prompt") == "login" for form in page.forms()))


def upstream_authorization_request(world, person: Person, upstream_url: str, app, **extra) -> dict:
    """The parameters op-proxy sends the person to the upstream with (the browser pauses there)."""
    person.stop_at = upstream_url
    try:
        arrival = person.visit(app.authorization_url(**extra))
    finally:
        person.stop_at = None
    assert isinstance(arrival, Arrival) and arrival.url.startswith(upstream_url), arrival
    return arrival.params


def test_an_app_demanding_a_fresh_sign_in_has_the_person_sign_in_again_at_the_upstream(federation):
    world, app = federation, app_for(federation)
    person = world.person(next(iter(world.google.config["accounts"])))
    assert isinstance(person.sign_in(app.authorization_url(idp_hint="google")), Arrival)
    asked = upstream_login_forms_shown(person, world.google)
    assert asked == 1

    # Google still has the person's session; without prompt=login passed on it would sign them in silently.
    arrival = person.sign_in(app.authorization_url(idp_hint="google", prompt="login"))

    assert isinstance(arrival, Arrival)
    assert upstream_login_forms_shown(person, world.google) == asked + 1


def test_prompt_login_and_max_age_reach_upstreams_that_take_them_but_not_thaid(federation):
    world, app = federation, app_for(federation)

    google = upstream_authorization_request(world, world.person(None), world.google.issuer, app,
                                            idp_hint="google", prompt="login", max_age="0")
    thaid = upstream_authorization_request(world, world.person(PID), world.proxy.url, app,
                                           idp_hint="thaid", prompt="login", max_age="0")

    assert google["prompt"] == "login" and google["max_age"] == "0"
    # ThaID documents only response_type, client_id, redirect_uri, scope and state: forward_prompt = false.
    assert "prompt" not in thaid and "max_age" not in thaid
    assert thaid["client_id"] == "op-proxy"


# -- what apps are told about a person ---------------------------------------------------------------------

def test_an_app_keyed_on_the_normalized_id_can_create_a_thaid_person(federation):
    """The seed's findOrCreateUser() keys on the normalized user: ThaID has no e-mail and its only id is
    the national ID, so id and username are op-proxy's stable sub for the app, never the pid."""
    world = federation
    app = app_for(world)
    first = verify_id_token(world.issuer, app.tokens_for(world.person(PID).sign_in(
        app.authorization_url(idp_hint="thaid")))["id_token"], "hr-app", nonce="n-fed")
    sent_first = world.handler.received[-1]["normalizedUser"]
    again = app_for(world)
    again.tokens_for(world.person(PID).sign_in(again.authorization_url(idp_hint="thaid")))
    sent_again = world.handler.received[-1]["normalizedUser"]

    assert sent_first["id"] == sent_first["username"] == first["sub"]
    assert sent_again["id"] == sent_first["id"]  # the same person, the same record in the app
    assert PID not in json.dumps(sent_first)
    # An upstream with its own id and username keeps them (PSU's psu_id and preferred_username).
    psu = world.person(next(iter(world.psu.config["accounts"])))
    psu_app = app_for(world)
    psu_app.tokens_for(psu.sign_in(psu_app.authorization_url(idp_hint="psu")))
    assert world.handler.received[-1]["normalizedUser"]["id"] == "6400001"
    assert world.handler.received[-1]["normalizedUser"]["username"] == "somchai.j"


def test_google_and_psu_say_whether_the_email_address_is_verified(federation):
    world = federation
    for upstream, account in (("google", next(iter(world.google.config["accounts"]))),
                              ("psu", next(iter(world.psu.config["accounts"])))):
        app = app_for(world, scope="openid email")
        tokens = app.tokens_for(world.person(account).sign_in(app.authorization_url(idp_hint=upstream)))
        claims = verify_id_token(world.issuer, tokens["id_token"], "hr-app")
        assert claims["email_verified"] is True, upstream
        assert app.userinfo(tokens["access_token"]).json()["email_verified"] is True, upstream


# -- refused callbacks: audited, and in the person's language --------------------------------------------

def audit_lines(world, since: int = 0) -> list[str]:
    return [line for line in world.op_proxy.log().splitlines()[since:] if " audit event=" in line]


def paused_at_callback(world, person: Person, app, **extra) -> Arrival:
    person.stop_at = world.issuer + "/callback/"
    try:
        callback = person.sign_in(app.authorization_url(**extra))
    finally:
        person.stop_at = None
    assert isinstance(callback, Arrival) and callback.url.startswith(world.issuer + "/callback/"), callback
    return callback


def test_a_callback_carrying_another_browsers_state_is_refused_and_audited(federation):
    """Login CSRF: Mallory starts a sign-in, stops before the callback and has Somchai's browser open it."""
    world = federation
    mallory, somchai = world.person(PID), world.person(PID)
    callback = paused_at_callback(world, mallory, app_for(world), idp_hint="thaid")
    lines = len(world.op_proxy.log().splitlines())

    page = somchai.visit(callback.url)

    assert isinstance(page, Page) and page.status == 400 and page.title == "การเข้าสู่ระบบถูกปฏิเสธ"
    audited = audit_lines(world, lines)
    assert len(audited) == 1 and "outcome=failure" in audited[0] and "client=hr-app" in audited[0]
    assert "reason=state_from_another_browser" in audited[0]


def test_the_mix_up_audit_row_names_the_client(federation):
    world, person = federation, federation.person(PID)
    callback = paused_at_callback(world, person, app_for(world), idp_hint="thaid")
    lines = len(world.op_proxy.log().splitlines())
    person.http.get(callback.url.replace("/callback/thaid?", "/callback/google?"))
    audited = audit_lines(world, lines)
    assert len(audited) == 1 and "reason=callback_at_another_upstream" in audited[0]
    assert "client=hr-app" in audited[0] and "expected=thaid" in audited[0]


def language_link(page_html: str, language: str = "en") -> str:
    found = re.search(rf'<a href="([^"]*)" hreflang="{language}"', page_html)
    assert found, "the page has no link to that language"
    return unescape(found.group(1))


def test_refused_callbacks_speak_english_to_an_english_speaker(federation):
    world = federation
    english = Person(world.issuer, accept_language="en", upstreams=(world.proxy.url,), upstream_account=PID)
    unknown = english.http.get(world.issuer + "/callback/thaid?code=abc&state=made-up")
    assert unknown.status_code == 400 and "<h1 class=\"error\">Sign-in not found</h1>" in unknown.text

    # The application asked for English (ui_locales), the browser prefers Thai: the mix-up refusal is English.
    thai_browser = world.person(PID)
    callback = paused_at_callback(world, thai_browser, app_for(world), idp_hint="thaid", ui_locales="en")
    mixed_up = thai_browser.http.get(callback.url.replace("/callback/thaid?", "/callback/google?"))
    assert mixed_up.status_code == 400 and "Sign-in refused" in mixed_up.text


def test_switching_language_on_a_refused_callback_shows_the_same_message_without_sending_the_code_again(federation):
    world = federation
    person = world.person(PID)
    callback = paused_at_callback(world, person, app_for(world), idp_hint="thaid")
    mixed_up = person.http.get(callback.url.replace("/callback/thaid?", "/callback/google?"))
    assert "การเข้าสู่ระบบถูกปฏิเสธ" in mixed_up.text
    link = language_link(mixed_up.text)
    assert "code=" not in link and "state=" not in link
    lines = len(world.op_proxy.log().splitlines())

    in_english = person.http.get(world.issuer + link)

    assert in_english.status_code == 400 and "Sign-in refused" in in_english.text
    assert "different sign-in service" in in_english.text
    assert audit_lines(world, lines) == []  # nothing was asked of anyone again


def test_switching_language_on_an_upstream_error_page_does_not_replay_the_callback(federation):
    world = federation
    person = world.person(PID)
    callback = paused_at_callback(world, person, app_for(world), idp_hint="thaid")
    cancelled = person.http.get(f"{world.issuer}/callback/thaid?error=user_denied&state={callback.params['state']}")
    assert "คุณยกเลิกการเข้าสู่ระบบที่ ThaID" in cancelled.text
    link = language_link(cancelled.text)
    assert "state=" not in link and "code=" not in link
    lines = len(world.op_proxy.log().splitlines())

    in_english = person.http.get(world.issuer + link)

    assert in_english.status_code == 400 and "You cancelled signing in at ThaID." in in_english.text
    assert audit_lines(world, lines) == []  # no second failure, no second audit row
    retry = in_english.text.split('class="button" href="')[1].split('"')[0]
    assert person.http.get(world.issuer + retry).status_code == 303  # the way back still works
    # Someone else's browser cannot read it.
    assert world.person(PID).http.get(world.issuer + link).status_code == 400


def test_sign_in_pages_follow_the_server_default_language_and_the_applications_ui_locales(make_server):
    server = make_server(env={"OP_PROXY_SERVER_DEFAULT_LOCALE": "en"})
    no_preference = Person(server.issuer, accept_language="")
    gone = no_preference.http.get(server.url("/login/no-such-sign-in"))
    assert gone.status_code == 400 and "Sign-in not found" in gone.text
    assert "Sign-in not found" not in no_preference.http.get(server.url("/login/no-such-sign-in?lang=th")).text

    thai = Person(server.issuer, accept_language="th")
    url = App(server.issuer).authorization_url(ui_locales="en")
    assert isinstance(thai.sign_in(url), Arrival)
    login_page = next(p.url for p in thai.pages if "/password/" in p.url)
    finished = thai.http.get(login_page.split("/password/")[0])
    assert finished.status_code == 400 and "Sign-in already finished" in finished.text


# -- a password answer lost on the way ----------------------------------------------------------------------

def test_a_password_post_whose_answer_was_lost_can_be_sent_again_by_the_same_browser(make_server):
    server = make_server()
    somchai = Person(server.issuer)
    app = App(server.issuer)
    form_page = somchai.visit(app.authorization_url())
    form = next(f for f in form_page.forms() if "password" in f["html"])
    answer = {**form["fields"], "username": "demo", "password": "demo"}

    lost = somchai.http.post(form["action"], data=answer)  # op-proxy answered; the answer never arrived
    assert lost.is_redirect and "code=" in lost.headers["location"]

    retried = somchai.http.post(form["action"], data=answer)  # the browser sends the form again
    assert retried.is_redirect and retried.headers["location"] == lost.headers["location"]
    token = app.tokens_for(Arrival(retried.headers["location"]))
    assert token["id_token"]

    # Never for another browser, nor for someone else at the same browser.
    other_browser = Person(server.issuer).http.post(form["action"], data=answer)
    assert other_browser.status_code == 400 and "code=" not in other_browser.headers.get("location", "")
    other_person = somchai.http.post(form["action"], data={**answer, "username": "other",
                                                            "password": "other-password"})
    assert other_person.status_code == 400 and "การเข้าสู่ระบบนี้เสร็จสิ้นแล้ว" in other_person.text


# -- upstreams that send too much, too slowly, or lose their keys ---------------------------------------------

class HostileUpstreams:
    """ThaID (and PSU) each behind a tampering proxy, op-proxy on the database under test, the demo app."""

    def __init__(self, directory, database_url: str, *, psu: bool = True, thaid_settings: str = ""):
        op_port, thaid_port, psu_port = free_port(), free_port(), free_port()
        self.issuer = f"http://127.0.0.1:{op_port}"
        thaid = thaid_config(free_port(), "op-proxy", UPSTREAM_SECRETS["THAID_SECRET"], self.issuer + "/callback/thaid",
                             issuer=f"http://127.0.0.1:{thaid_port}")
        self.thaid = Upstream(thaid, directory).start()
        self.thaid_proxy = TamperingProxy(thaid, port=thaid_port).start()
        self.parts = [self.thaid, self.thaid_proxy]
        psu_issuer = "http://127.0.0.1:9/application/o/psu"
        if psu:
            config = psu_config(free_port(), "op-proxy", UPSTREAM_SECRETS["PSU_SECRET"],
                                self.issuer + "/public/callback.php",
                                issuer=f"http://127.0.0.1:{psu_port}/application/o/psu")
            self.psu = Upstream(config, directory).start()
            self.psu_proxy = TamperingProxy(config, port=psu_port).start()
            self.parts += [self.psu, self.psu_proxy]
            psu_issuer = config["issuer"]
        sections = upstream_sections(self.thaid_proxy.url, psu_issuer, "http://127.0.0.1:9").replace(
            'client_secret_env = "THAID_SECRET"', 'client_secret_env = "THAID_SECRET"\n' + thaid_settings)
        config_path = write_config(directory, port=op_port, database_url=database_url, extra=sections)
        self.op_proxy = OpProxyServer(config_path, op_port, env=UPSTREAM_SECRETS).start()
        self.parts.insert(0, self.op_proxy)

    def person(self, account: str) -> Person:
        proxies = [self.thaid_proxy.url] + ([self.psu_proxy.url] if hasattr(self, "psu_proxy") else [])
        return Person(self.issuer, upstreams=tuple(proxies), upstream_account=account)

    def app(self) -> App:
        return App(self.issuer, scope="openid profile groups", nonce="n-fed")

    def sign_in(self, account: str, upstream: str, app=None):
        app = app or self.app()
        return app, self.person(account).sign_in(app.authorization_url(idp_hint=upstream))

    def stop(self):
        for part in self.parts:
            part.stop()


@pytest.fixture
def hostile(tmp_path, database_url):
    require_peer("Node.js", node_available() is not None,
                 "Node.js with tests/peers/node_modules (run `make peers`) is needed for the upstreams")
    worlds = []

    def start(**options) -> HostileUpstreams:
        worlds.append(HostileUpstreams(tmp_path, database_url, **options))
        return worlds[-1]
    yield start
    for world in worlds:
        world.stop()


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_an_upstream_sending_megabytes_is_refused_and_the_persons_profile_stays_as_it_was(hostile):
    world = hostile()
    psu_sub = next(iter(world.psu.config["accounts"]))
    app, arrival = world.sign_in(PID, "thaid")  # Somchai signs in through an honest ThaID first
    tokens = app.tokens_for(arrival)
    assert app.userinfo(tokens["access_token"]).json()["name"] == "นายสมชาย ใจดี"

    # Then ThaID (or PSU) answers with what no real provider sends: a 3 MB token response (a name of
    # 100,000 characters, 5,000 groups), a name of 3,000 characters, 300 groups.
    for proxy, account, upstream, scenario in ((world.thaid_proxy, PID, "thaid", "oversized_token_response"),
                                               (world.thaid_proxy, PID, "thaid", "long_name"),
                                               (world.psu_proxy, psu_sub, "psu", "many_groups")):
        proxy.scenario = scenario
        _app, page = world.sign_in(account, upstream)
        proxy.scenario = None
        assert proxy.exchanges[-1][0] == scenario  # the upstream really said it
        assert isinstance(page, Page), f"{scenario}: the person was signed in"
        assert page.status == 400 and page.title == "ยังไม่ได้เข้าสู่ระบบ", (scenario, page.status, page.title)

    # Nothing was stored: the app still reads Somchai's real name, and the log says what happened
    # without a traceback, an SQL parameter or his national ID.
    assert app.userinfo(tokens["access_token"]).json()["name"] == "นายสมชาย ใจดี"
    log = world.op_proxy.log()
    refusals = [line for line in log.splitlines() if "audit event=sign_in outcome=failure" in line]
    assert len(refusals) == 3 and all("reason=upstream_refused" in line for line in refusals)
    assert "Traceback" not in log and "[parameters:" not in log
    assert PID not in log


def test_after_a_jwks_outage_during_a_key_rotation_the_next_sign_in_works(hostile):
    world = hostile(psu=False)
    assert isinstance(world.sign_in(PID, "thaid")[1], Arrival)

    world.thaid.stop()  # ThaID rotates its signing key ...
    world.thaid.config["jwks"] = generate_ec_jwks()
    world.thaid.start()
    world.thaid_proxy.scenario = "jwks_unavailable"  # ... while its JWKS endpoint is down
    _app, page = world.sign_in(PID, "thaid")
    assert isinstance(page, Page) and page.status == 502 and "ไม่สามารถติดต่อ ThaID" in page.html

    world.thaid_proxy.scenario = None  # the outage is over: the very next sign-in finds the new key
    assert isinstance(world.sign_in(PID, "thaid")[1], Arrival)


def test_one_callback_has_one_deadline_however_many_requests_it_makes(hostile):
    # ThaID's token and introspection answers each come 3 s late: within the 10 s `timeout` of one
    # request, but together past the 4 s the whole callback may take.
    world = hostile(psu=False, thaid_settings="sign_in_deadline = 4")
    person = world.person(PID)
    callback = paused_at_callback(world, person, world.app(), idp_hint="thaid")
    world.thaid_proxy.slow_seconds, world.thaid_proxy.scenario = 3.0, "slow"

    page = person.visit(callback.url)

    assert isinstance(page, Page) and page.status == 502 and "ไม่สามารถติดต่อ ThaID" in page.html
    assert "sign-in deadline" in world.op_proxy.log()
