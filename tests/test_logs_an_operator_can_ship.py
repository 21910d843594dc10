"""An operator ships op-proxy's log to Loki or Elasticsearch, and a help desk finds a person's trouble
from the reference on the page they saw: the same id is on the page, in the ``X-Request-Id`` header,
on every log line of that request, and in the audit row it wrote."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from op_proxy.config import ConfigError, load_settings
from op_proxy.storage.models import AuditEvent
from tests.support.person import Person
from tests.support.server import free_port, write_config
from tests.support.stored import stored_values

JSON_LOGS = '[logging]\nformat = "json"\n'
SIGN_IN = "/authorize?" + urlencode({"response_type": "code", "client_id": "demo", "scope": "openid",
                                     "redirect_uri": "http://127.0.0.1:5000/callback", "state": "s"})


def json_lines(server) -> list[dict]:
    """Every line op-proxy wrote, each parsed as one JSON object (a line that is not one fails here)."""
    lines = [line for line in server.log().splitlines() if line.strip()]
    objects = []
    for line in lines:
        if line.startswith("op-proxy: serving "):  # the one plain line serve prints for a person at a terminal
            continue
        objects.append(json.loads(line))
    return objects


def audit_details(server, event: str) -> list[dict]:
    return stored_values(server, select(AuditEvent.detail).where(AuditEvent.event == event).order_by(AuditEvent.id))


def test_a_mistyped_password_is_found_by_the_reference_in_the_json_log_and_the_audit_row(make_server):
    server = make_server(extra=JSON_LOGS)
    person = Person(server.issuer)
    page = person.visit(server.url(SIGN_IN))
    form = next(f for f in page.forms() if "password" in f["html"])
    refused = person.http.post(form["action"], data={"username": "demo", "password": "not-the-password"})
    assert refused.status_code == 401
    reference = refused.headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{12}", reference)

    unknown = httpx.get(server.url("/authorize"), params={"client_id": "nobody", "response_type": "code"})
    shown = re.search(r"<code>([^<]+)</code>", unknown.text).group(1)  # the reference the person reads out
    assert shown == unknown.headers["X-Request-Id"] != reference
    server.stop()

    entries = json_lines(server)
    assert {"time", "level", "logger", "message", "request_id"} <= set(entries[0])
    audit = [e for e in entries if e["logger"] == "op_proxy.audit" and e["request_id"] == reference]
    assert len(audit) == 1
    assert audit[0]["event"] == "sign_in" and audit[0]["outcome"] == "failure"  # fields a shipper can index
    assert audit[0]["reason"] == "wrong_password" and audit[0]["client"] == "demo"
    assert audit_details(server, "sign_in")[-1]["request_id"] == reference
    refusal = [e for e in entries if e["request_id"] == shown]
    assert refusal and "page error" in refusal[0]["message"]
    assert "not-the-password" not in server.log()


def test_a_request_id_nginx_chose_is_kept_and_a_forged_one_is_replaced(make_server):
    server = make_server()
    kept = httpx.get(server.url("/authorize"), params={"client_id": "nobody"},
                     headers={"X-Request-Id": "5f2b9c0d8e1a4b7c9d0e1f2a3b4c5d6e"})
    assert kept.headers["X-Request-Id"] == "5f2b9c0d8e1a4b7c9d0e1f2a3b4c5d6e"
    assert "5f2b9c0d8e1a4b7c9d0e1f2a3b4c5d6e" in kept.text
    for forged in ("x" * 200, "a b=c", "abc", '"><script>', "id%0ainjected=1"):
        answered = httpx.get(server.url("/authorize"), params={"client_id": "nobody"}, headers={"X-Request-Id": forged})
        assert re.fullmatch(r"[0-9a-f]{12}", answered.headers["X-Request-Id"])
        assert forged not in answered.text
    server.stop()
    assert "a b=c" not in server.log() and "injected" not in server.log()
    assert "request_id=5f2b9c0d8e1a4b7c9d0e1f2a3b4c5d6e" in server.log()  # the text log names it too


@pytest.mark.parametrize("setting, reason", [('format = "xml"', '"text" or "json"'), ('level = "LOUD"', "DEBUG")])
def test_a_log_setting_op_proxy_cannot_honour_stops_the_start(tmp_path, setting, reason):
    config = write_config(tmp_path, port=free_port(), database_url="sqlite+aiosqlite:///unused.sqlite3",
                          extra=f"[logging]\n{setting}\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert refused.value.key.startswith("logging.") and reason in refused.value.reason
