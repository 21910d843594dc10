"""The admin panel's identity providers, signing keys and users pages, driven over HTTP by an admin
(and a viewer) created with ``op-proxy admins create`` and signed in at /admin/login."""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select

from admin import formatting
from admin.upstreams import newest_key_at
from op_proxy.storage.models import AuditEvent, User
from tests.support.admin import post_form, signed_in_admin
from tests.support.person import Arrival, Page, Person
from tests.support.rp import demo_id_token
from tests.support.server import default_clients, free_port
from tests.support.stored import stored_values

REDIRECT = "http://127.0.0.1:5000/callback"


def dead_upstream(port: int) -> str:
    return f"""
[upstreams.partner]
kind = "oidc"
display_name = {{ th = "มหาวิทยาลัยพันธมิตร", en = "Partner university" }}
issuer = "http://127.0.0.1:{port}"
client_id = "op-proxy"
client_secret = "partner-secret"
timeout = 2
"""


# -- identity providers ---------------------------------------------------------------------------

def test_the_upstreams_page_shows_health_and_a_test_sign_in_ends_on_the_result_page(make_server):
    server = make_server(extra=dead_upstream(free_port()))
    admin = signed_in_admin(server)

    page = admin.http.get(server.url("/admin/upstreams"))
    assert page.status_code == 200
    local = re.search(r'<tr id="upstream-local">(.*?)</tr>', page.text, re.S).group(1)
    assert "Demo accounts" in local and "never" in local
    partner = re.search(r'<tr id="upstream-partner">(.*?)</tr>', page.text, re.S).group(1)
    assert "Partner university" in partner and "unreachable" in partner and "ConnectError" in partner

    # A test sign-in at the dead upstream stops at once, on an admin page.
    dead = admin.http.get(server.url("/admin/upstreams/partner/test"))
    assert dead.status_code == 502 and "It did not work." in dead.text

    # Through the local upstream: its password form (a wrong password first), then the result page.
    form = admin.visit(server.url("/admin/upstreams/local/test?lang=th"))
    assert isinstance(form, Page) and form.has_password_form() and "/password/local" in form.url
    wrong = admin.submit_password(form, "demo", "wrong")
    assert isinstance(wrong, Page) and wrong.status == 401
    result = admin.submit_password(wrong, "demo", "demo")
    assert isinstance(result, Page) and result.status == 200, result.html
    assert "/admin/upstreams/local/test/" in result.url
    assert "สมชาย ใจดี" in result.html and "somchai.j@example.ac.th" in result.html
    assert "1100700000019" not in result.html and "•••••••••0019" in result.html  # pid: last 4 digits only
    # The admin's browser is not left signed in as the person tested.
    silent = admin.visit(server.url("/authorize?client_id=demo&response_type=code&scope=openid&prompt=none"
                                    "&state=s&redirect_uri=" + REDIRECT))
    assert isinstance(silent, Arrival) and silent.params.get("error") == "login_required", silent

    page = admin.http.get(server.url("/admin/upstreams?lang=en")).text
    local = re.search(r'<tr id="upstream-local">(.*?)</tr>', page, re.S).group(1)
    assert "wrong_password" in local and "never" not in local

    # Someone else's browser cannot read the result.
    other = signed_in_admin(server, "deputy")
    login_id = result.url.rsplit("/", 1)[1]
    assert other.http.get(server.url(f"/admin/upstreams/local/test/{login_id}")).status_code == 404
    for person in (admin, other):
        person.close()


# -- signing keys ---------------------------------------------------------------------------------

def kid_of(token: str) -> str:
    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def published_kids(server) -> list[str]:
    return [key["kid"] for key in httpx.get(server.url("/jwks")).json()["keys"]]


def admin_actions(server) -> list[dict]:
    return stored_values(server, select(AuditEvent.detail).where(AuditEvent.event == "admin_action")
                         .order_by(AuditEvent.id))


def test_keys_rotate_now_publishes_and_retire_now_switches_only_for_admins_with_a_csrf_token(make_server):
    server = make_server()
    (first_kid,) = published_kids(server)
    admin = signed_in_admin(server)
    viewer = signed_in_admin(server, "watcher", role="viewer")

    page = admin.http.get(server.url("/admin/keys"))
    assert page.status_code == 200 and first_kid in page.text and 'action="/admin/keys/rotate"' in page.text
    assert 'data-confirm=' in page.text and "/admin/static/js/admin.js" in page.text
    viewer_page = viewer.http.get(server.url("/admin/keys"))
    assert viewer_page.status_code == 200 and 'action="/admin/keys/rotate"' not in viewer_page.text

    # Refused: a viewer, and a form without its CSRF token.
    for action in ("/admin/keys/rotate", "/admin/keys/retire"):
        assert post_form(viewer, server.url("/admin/keys"), action).status_code == 403
        assert admin.http.post(server.url(action), data={}).status_code == 400
    assert published_kids(server) == [first_kid]

    rotated = post_form(admin, server.url("/admin/keys"), "/admin/keys/rotate")
    assert rotated.status_code == 303
    kids = published_kids(server)
    assert len(kids) == 2 and first_kid in kids
    (second_kid,) = set(kids) - {first_kid}
    assert kid_of(demo_id_token(server)) == first_kid  # the new key waits for publish_ahead
    shown = admin.http.get(server.url(rotated.headers["location"])).text
    assert second_kid in shown and "New key" in shown

    # Retire now: the key every app has already fetched as "next" takes over, rather than a new key
    # no cached JWKS holds yet (and two keys left queued).
    retired = post_form(admin, server.url("/admin/keys"), "/admin/keys/retire")
    assert retired.status_code == 303
    assert sorted(published_kids(server)) == sorted([first_kid, second_kid])  # the old one stays for its tokens
    assert kid_of(demo_id_token(server)) == second_kid
    assert second_kid in admin.http.get(server.url(retired.headers["location"])).text
    # With no key waiting, retiring again makes a new one that signs at once.
    post_form(admin, server.url("/admin/keys"), "/admin/keys/retire")
    (third_kid,) = set(published_kids(server)) - {first_kid, second_kid}
    assert kid_of(demo_id_token(server)) == third_kid

    actions = admin_actions(server)
    assert [a["action"] for a in actions] == ["signing_key_rotated", "signing_key_retired_now",
                                              "signing_key_retired_now"]
    assert {a["admin"] for a in actions} == {"boss"} and actions[0]["kid"] == second_kid
    for person in (admin, viewer):
        person.close()


# -- users and roles ------------------------------------------------------------------------------

def session_client(save_path) -> dict:
    return {"client_id": "php-session", "name": "PHP", "mode": "php_session", "legacy_default": True,
            "redirect_uris": ["http://127.0.0.1:8082/protected_page.php"],
            "php_session": {"save_handler": "files", "save_path": str(save_path)}}


def test_the_users_page_lists_php_session_people_and_an_admin_changes_a_role(make_server, tmp_path):
    sessions = tmp_path / "php-sessions"
    sessions.mkdir()
    server = make_server(clients=default_clients() + [session_client(sessions)])
    person = Person(server.issuer)
    assert isinstance(person.sign_in(server.url("/sso-authen/public/login.php")), Arrival)
    person.close()
    admin = signed_in_admin(server, language="th")
    viewer = signed_in_admin(server, "watcher", role="viewer")

    listing = admin.http.get(server.url("/admin/users"))
    assert listing.status_code == 200 and "สมชาย ใจดี" in listing.text and "subscriber" in listing.text
    assert "1100700000019" not in listing.text
    assert 'id="user-total">1 คน<' in listing.text
    assert 'id="user-total">1 person<' in viewer.http.get(server.url("/admin/users")).text  # not "1 people"
    user_id = re.search(r'<tr id="user-(\d+)">', listing.text).group(1)
    found = admin.http.get(server.url("/admin/users"), params={"q": "somchai.j@"}).text
    assert f'id="user-{user_id}"' in found
    missing = admin.http.get(server.url("/admin/users"), params={"q": "nobody-like-this"}).text
    assert '<tr id="user-' not in missing and "ไม่พบผู้ใช้" in missing

    role_action = f"/admin/users/{user_id}/role"
    assert post_form(viewer, server.url("/admin/users"), role_action, role="editor").status_code == 403
    assert admin.http.post(server.url(role_action), data={"role": "editor"}).status_code == 400
    assert post_form(admin, server.url("/admin/users"), role_action, role="x" * 51).status_code == 400
    assert post_form(admin, server.url("/admin/users"), role_action, role="   ").status_code == 400
    national_id = post_form(admin, server.url("/admin/users"), role_action, role="1100700000019")
    assert national_id.status_code == 400 and "เลขประจำตัวประชาชน" in national_id.text

    changed = post_form(admin, server.url("/admin/users"), role_action, role="editor")
    assert changed.status_code == 303
    assert stored_values(server, select(User.role).where(User.id == int(user_id))) == ["editor"]
    last = admin_actions(server)[-1]
    assert re.fullmatch(r"[0-9a-f]{12}", last.pop("request_id"))  # the reference of the admin's request
    assert last == {"admin": "boss", "action": "user_role_changed", "user_id": int(user_id),
                    "role": "editor", "previous_role": "subscriber"}
    assert 'value="editor"' in admin.http.get(server.url(changed.headers["location"])).text
    for someone in (admin, viewer):
        someone.close()


# -- formatting -----------------------------------------------------------------------------------

def test_times_are_shown_the_thai_way_in_thai_national_ids_are_masked_and_key_ages_read_from_jwks():
    moment = int(datetime(2026, 11, 22, 14, 5, tzinfo=ZoneInfo("Asia/Bangkok")).timestamp())  # the panel's zone
    assert formatting.when(moment, "th") == "22 พ.ย. 2569 14:05"
    assert formatting.when(moment, "en") == "2026-11-22 14:05"
    assert formatting.when(None, "th") == "—"
    assert formatting.when(moment, "en", ZoneInfo("UTC")) == "2026-11-22 07:05"  # [admin] timezone = "UTC"
    assert formatting.mask_ids("pid 1100700000019, tel 0812345678") == "pid •••••••••0019, tel 0812345678"
    assert formatting.mask_ids("1-1007-00000-01-9") == "•••••••••0019"
    assert formatting.mask_ids({"groups": ["1100700000019"], "n": 1100700000019}) == {
        "groups": ["•••••••••0019"], "n": "•••••••••0019"}
    assert newest_key_at({"keys": [{"kid": "a", "iat": 100}, {"kid": "b", "nbf": 200}, {"kid": "c"}]}) == 200
    assert newest_key_at({"keys": [{"kid": "a"}]}) is None and newest_key_at(None) is None
