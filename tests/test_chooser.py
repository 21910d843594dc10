"""The chooser lists the upstreams a client may use, named in the person's language."""

from __future__ import annotations

import httpx

from tests.support.person import Page, Person
from tests.support.rp import App
from tests.support.server import DEMO_PASSWORD_HASH, DEMO_SECRET_HASH, default_clients

STAFF_UPSTREAM = f"""
[upstreams.staff]
kind = "local"
display_name = {{ th = "บุคลากร", en = "Staff" }}

[[upstreams.staff.users]]
username = "staff1"
password_hash = "{DEMO_PASSWORD_HASH}"
claims = {{ name = "บุคลากร หนึ่ง", username = "staff1" }}
"""

STAFF_ONLY_APP = {"client_id": "staff-only", "name": "Staff only", "client_secret_hash": DEMO_SECRET_HASH,
                  "allowed_upstreams": ["staff"], "redirect_uris": ["http://127.0.0.1:5020/callback"]}


def authorization_url(server, client_id="demo", redirect_uri="http://127.0.0.1:5000/callback", **extra):
    return App(server.issuer, client_id, redirect_uri, scope="openid profile email").authorization_url(**extra)


def test_the_chooser_offers_each_allowed_upstream_and_each_one_signs_in(make_server):
    server = make_server(clients=default_clients() + [STAFF_ONLY_APP], extra=STAFF_UPSTREAM)
    person = Person(server.issuer)
    chooser = person.visit(authorization_url(server))
    assert isinstance(chooser, Page) and chooser.title == "เข้าสู่ระบบด้วย"
    assert "บัญชีทดลอง" in chooser.html and "บุคลากร" in chooser.html

    english = person.visit(authorization_url(server, ui_locales="en"))
    assert "Demo accounts" in english.html and "Staff" in english.html

    staff_link = next(link for link in chooser.html.split('href="')[1:] if link.startswith("/login/")
                      and link.split('"')[0].endswith("/staff")).split('"')[0]
    form = person.visit(server.url(staff_link))
    arrival = person.submit_password(form, username="staff1", password="demo")
    assert arrival.params["code"]


def test_a_client_allowed_one_upstream_goes_straight_to_it_and_cannot_use_another(make_server):
    server = make_server(clients=default_clients() + [STAFF_ONLY_APP], extra=STAFF_UPSTREAM)
    person = Person(server.issuer)
    page = person.visit(authorization_url(server, "staff-only", "http://127.0.0.1:5020/callback"))
    assert page.has_password_form() and "บุคลากร" in page.html
    login_id = page.url.split("/login/")[1].split("/")[0]

    refused = person.http.get(server.url(f"/login/{login_id}/local"))
    assert refused.status_code == 403 and "ไม่สามารถใช้วิธีเข้าสู่ระบบนี้ได้" in refused.text
    demo_user = person.http.post(server.url(f"/login/{login_id}/password/local"),
                                 data={"username": "demo", "password": "demo"})
    assert demo_user.status_code == 403


def test_a_repeated_parameter_is_refused(make_server):
    server = make_server()
    url = authorization_url(server)
    twice_client = httpx.get(url + "&client_id=second-app")
    assert twice_client.status_code == 400 and "location" not in twice_client.headers
    twice_scope = httpx.get(url + "&scope=openid")
    assert twice_scope.status_code == 303
    assert "error=invalid_request" in twice_scope.headers["location"]


def test_a_session_from_an_upstream_the_client_does_not_accept_is_not_reused(make_server):
    server = make_server(clients=default_clients() + [STAFF_ONLY_APP], extra=STAFF_UPSTREAM)
    person = Person(server.issuer)
    chooser = person.visit(authorization_url(server))
    local_form = person.visit(server.url(chooser.url.split(server.issuer)[1] + "/local"))
    assert person.submit_password(local_form).params["code"]  # signed in through "local"

    page = person.visit(authorization_url(server, "staff-only", "http://127.0.0.1:5020/callback"))
    assert isinstance(page, Page) and page.has_password_form() and "บุคลากร" in page.html
    none = person.visit(authorization_url(server, "staff-only", "http://127.0.0.1:5020/callback", prompt="none"))
    assert none.params["error"] == "login_required"
