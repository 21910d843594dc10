"""What an operator's monitoring sees: /healthz, /readyz and Prometheus /metrics, and nothing about a
person in any of them."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.person import Person
from tests.support.rp import App
from tests.support.server import DEMO_PROFILE


def samples(server) -> dict[tuple, float]:
    """Every sample of /metrics as {(name, (label, value), ...): value}, parsed by Prometheus' own parser."""
    answer = httpx.get(server.url("/metrics"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            found[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return found


def sign_in_once_after_a_wrong_password(server) -> dict:
    app = App(server.issuer, scope="openid profile email")
    person = Person(server.issuer)
    person.submit_password(person.visit(app.authorization_url()), password="not-the-password")
    token = app.sign_in(person)
    return {"token": token, "claims": app.id_token_claims(token)}


def test_metrics_count_sign_ins_and_requests_and_say_nothing_about_the_person(make_server):
    server = make_server()
    before = samples(server)
    signed_in = sign_in_once_after_a_wrong_password(server)

    after = samples(server)
    success = ("op_proxy_events_total", ("event", "sign_in"), ("outcome", "success"), ("upstream", "local"))
    failure = ("op_proxy_events_total", ("event", "sign_in"), ("outcome", "failure"), ("upstream", "local"))
    issued = ("op_proxy_events_total", ("event", "tokens_issued"), ("outcome", "success"), ("upstream", ""))
    assert after[success] - before.get(success, 0) == 1
    assert after[failure] - before.get(failure, 0) == 1
    assert after[issued] - before.get(issued, 0) == 1
    assert after[("op_proxy_active_sso_sessions",)] == 1
    assert after[("op_proxy_signing_key_age_seconds",)] >= 0
    token_requests = ("op_proxy_http_request_duration_seconds_count", ("method", "POST"), ("route", "/token"),
                      ("status", "200"))
    assert after[token_requests] == 1

    text = httpx.get(server.url("/metrics")).text
    for private in (DEMO_PROFILE["pid"], signed_in["claims"]["sub"], "demo-secret", signed_in["token"]["access_token"],
                    "สมชาย"):
        assert private not in text
    # Routes are templates: the per-login path of the password form is not a label of its own.
    assert not re.search(r'route="/login/[A-Za-z0-9_-]{16,}', text)


def test_made_up_methods_are_counted_together_so_strangers_cannot_grow_the_metrics(make_server):
    server = make_server()
    for method in ("PROPFIND", "MKCOL", "PURGE", "LINK"):  # HTTP knows them; op-proxy serves none
        assert httpx.request(method, server.url("/token")).status_code == 405
    for method in ("BREW", "WHEN", "X-1"):  # nobody defined them: refused before the application
        assert httpx.request(method, server.url("/token")).status_code == 501
    httpx.get(server.url("/.well-known/openid-configuration"))
    after = samples(server)
    methods = {dict(labels).get("method") for name, *labels in after
               if name == "op_proxy_http_request_duration_seconds_count"}
    assert {"other", "GET"} <= methods
    assert not methods & {"PROPFIND", "MKCOL", "PURGE", "LINK", "BREW", "WHEN", "X-1"}
    counted = sum(value for (name, *labels), value in after.items()
                  if name == "op_proxy_http_request_duration_seconds_count" and ("method", "other") in labels)
    assert counted == 4


def test_metrics_can_be_turned_off(make_server):
    server = make_server(env={"OP_PROXY_SERVER_METRICS": "false"})
    assert httpx.get(server.url("/metrics")).status_code == 404


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_ready_only_while_the_database_answers(make_server, database_url):
    from tests.support.databases import _connect

    server = make_server()
    assert httpx.get(server.url("/readyz")).json() == {"status": "ready"}
    name = database_url.rsplit("/", 1)[1].split("?")[0]
    with _connect().cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{name}`")  # the database is gone (restored from the wrong backup, say)
    not_ready = httpx.get(server.url("/readyz"))
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "not ready"
    assert httpx.get(server.url("/healthz")).json() == {"status": "ok"}  # the process itself still answers
