"""Admins may sign in to the panel through op-proxy itself when a configured group says so, and only
the upstreams named in ``[admin] sso_upstreams`` are believed about groups."""

from __future__ import annotations

import pytest

from op_proxy.config import ConfigError, load_settings
from tests.support.admin import csrf_token
from tests.support.local_upstream import local_upstream
from tests.support.person import Page, Person
from tests.support.server import free_port, write_config

STAFF = """
[admin]
sso_admin_groups = ["it-admins"]
sso_viewer_groups = ["auditors"]
sso_upstreams = ["staff"]

""" + local_upstream("staff", {"th": "บุคลากร", "en": "Staff"}, {
    "it.boss": {"name": "หัวหน้า ไอที", "username": "it.boss", "groups": ["it-admins"]},
    "auditor": {"name": "ผู้ตรวจ สอบ", "username": "auditor", "groups": ["auditors"]},
    # Two people whose upstream happens to give them the same username claim.
    "bob": {"name": "บ็อบ", "username": "shared", "groups": ["auditors"]},
    "alice": {"name": "อลิซ", "username": "shared", "groups": ["it-admins"]},
    "clerk": {"name": "เสมียน", "username": "clerk", "groups": ["staff"]},
}) + local_upstream("community", {"th": "ชุมชน", "en": "Community"}, {
    # A self-service directory: people there choose their own groups.
    "mallory": {"name": "มัลลอรี", "username": "mallory", "groups": ["it-admins"]},
})


def sign_in_to_panel(server, username: str) -> Person:
    person = Person(server.issuer, username=username, password="demo")
    # staff is the one upstream trusted for the panel: the person goes straight to its password form
    form = person.visit(server.url("/admin/login/sso"))
    person.submit_password(form)  # ends with a redirect to /admin/ and the panel's cookie
    return person


def test_a_member_of_the_admin_group_signs_in_to_the_panel_through_op_proxy(make_server):
    server = make_server(extra=STAFF)
    login_page = Person(server.issuer).http.get(server.url("/admin/login"))
    assert "/admin/login/sso" in login_page.text

    boss = sign_in_to_panel(server, "it.boss")
    panel = boss.http.get(server.url("/admin/clients"))
    assert panel.status_code == 200 and "staff:it.boss (ผู้ดูแล)" in panel.text

    auditor = sign_in_to_panel(server, "auditor")
    page = auditor.http.get(server.url("/admin/clients"))
    assert "staff:auditor (ผู้ดูอย่างเดียว)" in page.text and "/admin/clients/new" not in page.text


def test_someone_outside_the_groups_is_refused(make_server):
    server = make_server(extra=STAFF)
    person = Person(server.issuer, username="clerk", password="demo")  # staff, but in no admin group
    refused = person.submit_password(person.visit(server.url("/admin/login/sso")))
    assert isinstance(refused, Page) and refused.status == 403
    assert person.http.get(server.url("/admin/clients")).status_code == 303  # back to the login page


def test_groups_from_a_self_service_upstream_never_make_an_admin(make_server):
    server = make_server(extra=STAFF)
    mallory = Person(server.issuer, username="mallory", password="demo")
    # The panel's sign-in offers only the trusted upstream: with one, the person goes straight to it.
    to_staff = mallory.visit(server.url("/admin/login/sso"))
    assert isinstance(to_staff, Page) and to_staff.url.endswith("/password/staff")
    assert "ชุมชน" not in to_staff.html
    # Typing the community upstream's address by hand does not help: it is not a way into the panel ...
    login_id = to_staff.url.split("/login/")[1].split("/")[0]
    refused = mallory.visit(server.url(f"/login/{login_id}/community"))
    assert isinstance(refused, Page) and refused.status == 403
    assert mallory.http.get(server.url("/admin/clients")).status_code == 303  # her "it-admins" gave her nothing


def test_admin_groups_without_trusted_upstreams_stop_the_start(tmp_path):
    config = write_config(tmp_path, port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/op.sqlite3",
                          extra=STAFF.replace('sso_upstreams = ["staff"]\n', ""))
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={})
    assert "admin.sso_upstreams" in str(refused.value) and "no upstream is trusted" in str(refused.value)

    mistyped = STAFF.replace('sso_upstreams = ["staff"]', 'sso_upstreams = ["staf"]')
    with pytest.raises(ConfigError, match="'staf' is not a configured upstream"):
        load_settings(write_config(tmp_path, port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/o.db",
                                   extra=mistyped), environ={})


def test_two_people_with_the_same_username_claim_are_two_admins_with_their_own_roles(make_server):
    server = make_server(extra=STAFF)
    bob = sign_in_to_panel(server, "bob")
    alice = sign_in_to_panel(server, "alice")
    assert "staff:shared (ผู้ดูแล)" in alice.http.get(server.url("/admin/clients")).text
    # Alice signing in made nobody else an admin: Bob is still a viewer and still cannot rotate keys.
    page = bob.http.get(server.url("/admin/keys"))
    assert "staff:shared (ผู้ดูอย่างเดียว)" in page.text
    refused = bob.http.post(server.url("/admin/keys/rotate"), data={"csrf_token": csrf_token(page.text)})
    assert refused.status_code == 403


def test_a_viewer_signs_out(make_server):
    server = make_server(extra=STAFF)
    auditor = sign_in_to_panel(server, "auditor")
    page = auditor.http.get(server.url("/admin/"))
    answer = auditor.http.post(server.url("/admin/logout"), data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/login"
    assert auditor.http.get(server.url("/admin/")).status_code == 303  # signed out: back to the login page


def test_someone_taken_out_of_the_admin_group_is_no_admin_any_more_even_in_an_open_session(make_server):
    server = make_server(extra=STAFF)
    alice = sign_in_to_panel(server, "alice")
    assert "staff:shared (ผู้ดูแล)" in alice.http.get(server.url("/admin/")).text

    # The organisation moves Alice out of it-admins (here: her groups in the config) ...
    config = server.config_path.read_text(encoding="utf-8")
    moved = config.replace('"name" = "อลิซ", "username" = "shared", "groups" = ["it-admins"]',
                           '"name" = "อลิซ", "username" = "shared", "groups" = ["staff"]')
    assert moved != config
    server.config_path.write_text(moved, encoding="utf-8")
    server.stop()
    server.start()
    # ... and the next time she signs in through op-proxy she is refused, and her open session ends.
    other_browser = Person(server.issuer, username="alice", password="demo")
    refused = other_browser.submit_password(other_browser.visit(server.url("/admin/login/sso")))
    assert isinstance(refused, Page) and refused.status == 403
    assert alice.http.get(server.url("/admin/")).status_code == 303
