"""A helpdesk admin is asked "I could not sign in this morning, what happened?": the audit log answers
by the person's name, username or e-mail, never by an opaque sub alone and never with a national ID."""

from __future__ import annotations

import re
from html import unescape

from tests.support.admin import signed_in_admin
from tests.support.person import Arrival, Person
from tests.support.rp import authlib_client
from tests.support.server import DEMO_PROFILE

APP_REDIRECT = "http://127.0.0.1:5000/callback"


def who_column(page_html: str) -> list[str]:
    cells = re.findall(r'<td class="audit-who">(.*?)</td>', page_html, re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", cell)).split()) for cell in cells]


def test_the_audit_log_tells_what_happened_to_one_person_by_their_username_or_name(make_server):
    server = make_server()
    app = authlib_client(server.issuer, "demo", "demo-secret", APP_REDIRECT)
    url, _ = app.create_authorization_url(server.url("/authorize"), code_verifier="p" * 43)
    somchai = Person(server.issuer)
    form = somchai.visit(url)
    somchai.submit_password(form, "demo", "a wrong password")  # a typo first...
    assert isinstance(somchai.sign_in(url), Arrival)  # ...then the right one
    stranger = Person(server.issuer)
    stranger.submit_password(stranger.visit(url), "other", "not hers either")
    # Someone types their national ID number as the username: the log keeps its last four digits only.
    typist = Person(server.issuer)
    typist.submit_password(typist.visit(url), DEMO_PROFILE["pid"], "x")

    admin = signed_in_admin(server)
    by_username = admin.http.get(server.url("/admin/audit"), params={"person": "demo", "event": "sign_in"})
    by_name = admin.http.get(server.url("/admin/audit"), params={"person": "สมชาย ใจดี", "event": "sign_in"})

    for page in (by_username, by_name):
        assert page.status_code == 200
        who = who_column(page.text)
        # Newest first: the success (named as the identity provider names him), then the typo.
        assert len(who) == 2 and who[0].startswith("สมชาย ใจดี ") and who[1] == "demo", who
        assert 'data-outcome="success"' in page.text and 'data-outcome="failure"' in page.text
    everyone = admin.http.get(server.url("/admin/audit"), params={"event": "sign_in"}).text
    assert "other" in who_column(everyone)
    assert DEMO_PROFILE["pid"] not in everyone and f"•••••••••{DEMO_PROFILE['pid'][-4:]}" in who_column(everyone)
