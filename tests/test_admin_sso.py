"""Admins may sign in to the panel through op-proxy itself when a configured group says so."""

from __future__ import annotations

from tests.support.person import Page, Person
from tests.support.server import DEMO_PASSWORD_HASH

STAFF = f"""
[admin]
sso_admin_groups = ["it-admins"]
sso_viewer_groups = ["auditors"]

[upstreams.staff]
kind = "local"
display_name = {{ th = "บุคลากร", en = "Staff" }}

[[upstreams.staff.users]]
username = "it.boss"
password_hash = "{DEMO_PASSWORD_HASH}"
claims = {{ name = "หัวหน้า ไอที", username = "it.boss", groups = ["it-admins"] }}

[[upstreams.staff.users]]
username = "auditor"
password_hash = "{DEMO_PASSWORD_HASH}"
claims = {{ name = "ผู้ตรวจ สอบ", username = "auditor", groups = ["auditors"] }}
"""


def sign_in_to_panel(server, username: str) -> Person:
    person = Person(server.issuer, username=username, password="demo")
    chooser = person.visit(server.url("/admin/login/sso"))
    form = person.visit(chooser.url + "/staff")
    person.submit_password(form)  # ends with a redirect to /admin/ and the panel's cookie
    return person


def test_a_member_of_the_admin_group_signs_in_to_the_panel_through_op_proxy(make_server):
    server = make_server(extra=STAFF)
    login_page = Person(server.issuer).http.get(server.url("/admin/login"))
    assert "/admin/login/sso" in login_page.text

    boss = sign_in_to_panel(server, "it.boss")
    panel = boss.http.get(server.url("/admin/clients"))
    assert panel.status_code == 200 and "staff:it.boss (admin)" in panel.text

    auditor = sign_in_to_panel(server, "auditor")
    page = auditor.http.get(server.url("/admin/clients"))
    assert "staff:auditor (viewer)" in page.text and "/admin/clients/new" not in page.text


def test_someone_outside_the_groups_is_refused(make_server):
    server = make_server(extra=STAFF)
    person = Person(server.issuer)  # demo/demo at the local upstream: no admin group
    chooser = person.visit(server.url("/admin/login/sso"))
    refused = person.submit_password(person.visit(chooser.url + "/local"))
    assert isinstance(refused, Page) and refused.status == 403
    assert person.http.get(server.url("/admin/clients")).status_code == 303  # back to the login page
