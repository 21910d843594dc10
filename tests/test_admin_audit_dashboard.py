"""The admin panel's audit log (page and CSV, national IDs masked) and live dashboard (JSON and
server-sent events), driven over HTTP as an admin's browser would, against a real op-proxy."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from datetime import date, timedelta
from html import unescape

import httpx
import pytest

from admin.audit import mask_national_ids, spreadsheet_safe
from op_proxy import audit
from op_proxy.storage import Database
from tests.support.admin import admin_browser, create_admin, login_form
from tests.support.person import Person
from tests.support.rp import App
from tests.support.server import DEMO_PROFILE, DEMO_SECRET_HASH, default_clients

PID = DEMO_PROFILE["pid"]
MASKED_PID = "•" * 9 + PID[-4:]
THIRTEEN_DIGITS = re.compile(r"(?<!\d)\d{13}(?!\d)")
THAID_APP = {"client_id": "thaid-app", "name": "Allowed the national ID", "client_secret_hash": DEMO_SECRET_HASH,
             "allowed_scopes": ["openid", "profile", "thaid"], "redirect_uris": ["http://127.0.0.1:5010/callback"]}


# -- masking ---------------------------------------------------------------------------------------

def test_a_national_id_is_masked_to_its_last_four_digits_wherever_it_appears_in_a_cell():
    assert mask_national_ids("1100700000019") == "•••••••••0019"
    assert mask_national_ids(1100700000019) == "•••••••••0019"
    assert mask_national_ids('{"note": "pid=1100700000019, again 3100600123456"}') == \
        '{"note": "pid=•••••••••0019, again •••••••••3456"}'
    assert mask_national_ids("written 1-1007-00000-01-9 by hand") == "written •••••••••0019 by hand"
    assert mask_national_ids("abc1100700000019xyz") == "abc•••••••••0019xyz"
    # Other numbers are left alone: shorter and longer runs, times, addresses.
    for text in ("110070000001", "11007000000190", "1700000000", "203.0.113.7", "2026-05-17 14:05"):
        assert mask_national_ids(text) == text
    assert mask_national_ids(None) == ""


def test_a_csv_cell_never_starts_a_spreadsheet_formula():
    assert spreadsheet_safe("=HYPERLINK(\"http://evil\")") == "'=HYPERLINK(\"http://evil\")"
    assert spreadsheet_safe("+1") == "'+1" and spreadsheet_safe("@x") == "'@x"
    assert spreadsheet_safe("sign_in") == "sign_in"
    assert spreadsheet_safe(" =1+1") == "' =1+1" and spreadsheet_safe("\n=1+1") == "'\n=1+1"
    assert spreadsheet_safe("a =1") == "a =1"


# -- helpers ---------------------------------------------------------------------------------------

def audit_rows(html: str) -> list[dict]:
    rows = []
    for attributes, body in re.findall(r'<tr class="audit-row"([^>]*)>(.*?)</tr>', html, re.S):
        cells = [unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                 for cell in re.findall(r"<td[^>]*>(.*?)</td>", body, re.S)]
        rows.append({"event": re.search(r'data-event="([^"]*)"', attributes).group(1),
                     "outcome": re.search(r'data-outcome="([^"]*)"', attributes).group(1),
                     "when": cells[0], "who": cells[3], "client_id": cells[4], "upstream": cells[5],
                     "ip": cells[6], "detail": cells[7]})
    return rows


def next_event(lines, *, until=lambda figures: True, seconds: float = 20) -> dict:
    """The JSON of the next ``data:`` line of a server-sent-events stream that satisfies ``until``."""
    deadline = time.monotonic() + seconds
    for line in lines:
        if line.startswith("data:"):
            figures = json.loads(line[len("data:"):])
            if until(figures):
                return figures
        assert time.monotonic() < deadline, "no such event in time"
    raise AssertionError("the stream ended")


def record_events(database_url: str, events: list[tuple[str, dict]]) -> None:
    """Audit events written straight to the database, as another op-proxy process would."""
    async def write():
        db = Database(database_url)
        try:
            for event, fields in events:
                await audit.record(db, event, **fields)
        finally:
            await db.close()

    asyncio.run(write())


def sign_in_to_the_thaid_app(server) -> dict:
    """A person gets their password wrong once, then signs in to an app that may see their national ID."""
    app = App(server.issuer, "thaid-app", "http://127.0.0.1:5010/callback", scope="openid profile thaid")
    person = Person(server.issuer)
    try:
        person.submit_password(person.visit(app.authorization_url()), password="not-the-password")
        token = app.sign_in(person)
    finally:
        person.close()
    claims = app.id_token_claims(token)
    assert claims["pid"] == PID  # the app may see it; the audit log may not show it
    return claims


# -- the story -------------------------------------------------------------------------------------

@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_an_admin_sees_a_sign_in_in_the_audit_log_the_csv_and_the_live_dashboard(make_server, database_url):
    server = make_server(clients=default_clients() + [THAID_APP])
    create_admin(server, "auditor")
    # Someone types their national ID as an admin username: the audit log keeps it, masked.
    stray = httpx.Client(base_url=server.base, timeout=15)
    stray.post("/admin/login", data={"csrf_token": login_form(stray), "username": PID, "password": "whatever1234"})
    stray.close()
    admin = admin_browser(server, "auditor")

    assert admin.get("/admin/dashboard.json").json()["signins_24h"] == 0
    with admin.stream("GET", "/admin/dashboard/events", timeout=httpx.Timeout(15, read=20)) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next_event(lines)["signins_24h"] == 0
        claims = sign_in_to_the_thaid_app(server)
        live = next_event(lines, until=lambda figures: figures["signins_24h"] == 1)  # pushed, no reload
    assert live["failures_24h"] == 1

    # The dashboard: JSON, the page's big number, and a fresh stream's first event.
    figures = admin.get("/admin/dashboard.json").json()
    assert figures["signins_24h"] == 1 and figures["failures_24h"] == 1 and figures["failure_rate"] == 0.5
    assert figures["active_sessions"] == 1
    assert sum(hour["success"] for hour in figures["hours"]) == 1 and len(figures["hours"]) == 24
    assert {"client_id": "thaid-app", "name": "Allowed the national ID", "success": 1, "failure": 1} \
        in figures["clients"]
    assert {"upstream": "local", "name": "Demo accounts", "success": 1, "failure": 1} in figures["upstreams"]
    home = admin.get("/admin/")
    assert re.search(r'id="signins-24h">\s*1\s*<', home.text)
    assert '<script src="/admin/static/js/dashboard.js"></script>' in home.text and " style=" not in home.text
    with admin.stream("GET", "/admin/dashboard/events", timeout=httpx.Timeout(15, read=20)) as stream:
        assert next_event(stream.iter_lines())["signins_24h"] == 1

    # The audit log: the sign-in with its application, who and where from; newest first.
    page = admin.get("/admin/audit")
    assert page.status_code == 200 and PID not in page.text and MASKED_PID in page.text
    rows = audit_rows(page.text)
    sign_in = next(row for row in rows if row["event"] == "sign_in" and row["outcome"] == "success")
    assert sign_in["client_id"] == "thaid-app" and sign_in["upstream"] == "local"
    # Who: the person's name as the identity provider gave it, beside the sub that links to their events.
    assert sign_in["who"] == f"สมชาย ใจดี {claims['sub']}" and sign_in["ip"] == "127.0.0.1"
    assert [row["event"] for row in rows][-2:] == ["admin_sign_in", "admin_sign_in"]  # the oldest last
    assert any(row["event"] == "admin_sign_in" and MASKED_PID in row["who"] for row in rows)
    assert not THIRTEEN_DIGITS.search(" ".join(" ".join(row.values()) for row in rows))

    # Filters narrow the list.
    def listed(**args) -> list[dict]:
        answer = admin.get("/admin/audit", params=args)
        assert answer.status_code == 200
        return audit_rows(answer.text)

    only_app = listed(client_id="thaid-app")
    assert only_app and {row["client_id"] for row in only_app} == {"thaid-app"} and len(only_app) < len(rows)
    failures = listed(event="sign_in", outcome="failure")
    # The request id is the reference the person's page showed: the help desk finds the row by it;
    # who tried is the username as they typed it.
    assert [(row["client_id"], re.sub(r"request_id: [0-9a-f]{12}", "request_id: …", row["detail"]), row["who"])
            for row in failures] == [("thaid-app", "reason: wrong_password · request_id: … · username: demo", "demo")]
    assert listed(q="wrong_password", event="sign_in") == failures
    assert {row["who"] for row in listed(sub=claims["sub"])} == {f"สมชาย ใจดี {claims['sub']}"}
    assert listed(upstream="local", event="sign_in") == listed(event="sign_in")
    today = date.today()
    assert listed(**{"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}) == listed()
    assert listed(to=str(today - timedelta(days=2))) == []
    assert listed(client_id="demo") == []

    # The CSV: what the filters show, as an attachment Excel opens in Thai, no national ID in it.
    export = admin.get("/admin/audit.csv", params={"client_id": "thaid-app"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"].startswith("attachment;")
    assert export.content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig"))))
    header, body = table[0], table[1:]
    assert [line[header.index("client_id")] for line in body] == ["thaid-app"] * len(only_app)
    # A sub may begin with "-": its cell then carries the leading quote that keeps spreadsheets from
    # reading a formula.
    assert any(line[1] == "sign_in" and line[2] == "success"
               and line[header.index("sub")] == spreadsheet_safe(claims["sub"])
               for line in body)
    everything = admin.get("/admin/audit.csv").content.decode("utf-8-sig")
    assert PID not in everything and MASKED_PID in everything and not THIRTEEN_DIGITS.search(everything)

    # Each export is itself audited, with the admin's username as who did it.
    exports = listed(event="admin_action")
    assert exports and all(row["who"] == "admin auditor" and "audit_exported" in row["detail"] for row in exports)
    admin.close()


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_the_audit_log_pages_by_fifty_searches_thai_details_and_masks_ids(make_server, database_url):
    server = make_server()
    create_admin(server, "auditor", role="viewer")  # reading the log is for viewers too
    record_events(database_url, [("token_revoked", {"client_id": "demo", "reason": f"number {n}"}) for n in range(60)]
                  + [("user_handler", {"outcome": "failure", "client_id": "demo", "reason": "ไม่พบผู้ใช้",
                                       "note": f"citizen {PID}"})])
    admin = admin_browser(server, "auditor")

    first = admin.get("/admin/audit", params={"client_id": "demo"})
    rows = audit_rows(first.text)
    assert len(rows) == 50 and rows[0]["event"] == "user_handler"  # newest first
    assert "61" in first.text and 'rel="next"' in first.text
    second = audit_rows(admin.get("/admin/audit", params={"client_id": "demo", "page": 2}).text)
    assert len(second) == 11 and second[-1]["detail"] == "reason: number 0"

    found = audit_rows(admin.get("/admin/audit", params={"q": "ไม่พบ"}).text)
    assert [row["event"] for row in found] == ["user_handler"]
    assert MASKED_PID in found[0]["detail"] and PID not in found[0]["detail"]
    assert audit_rows(admin.get("/admin/audit", params={"q": "number 1%"}).text) == []  # no wildcards

    export = admin.get("/admin/audit.csv", params={"client_id": "demo"}).content.decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(export)))) == 1 + 61
    assert "ไม่พบผู้ใช้" in export and PID not in export and MASKED_PID in export
    admin.close()


def test_the_panel_s_data_is_for_signed_in_admins_and_the_live_stream_ends_with_their_session(make_server):
    server = make_server()
    anonymous = httpx.Client(base_url=server.base, timeout=15)
    for path in ("/admin/audit", "/admin/audit.csv", "/admin/dashboard.json", "/admin/dashboard/events"):
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/login", path
    anonymous.close()

    create_admin(server, "auditor")
    admin = admin_browser(server, "auditor")
    csrf = re.search(r'data-csrf="([^"]+)"', admin.get("/admin/").text).group(1)
    with admin.stream("GET", "/admin/dashboard/events", timeout=httpx.Timeout(15, read=20)) as stream:
        lines = stream.iter_lines()
        next_event(lines)
        assert admin.post("/admin/logout", data={"csrf_token": csrf}).status_code == 303
        rest = list(lines)  # the server ends the stream once the session is gone
    assert "event: signed-out" in rest
    admin.close()
