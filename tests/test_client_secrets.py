"""An app authenticates with its client secret at /token, /introspect and /revoke, and nobody can take
a core away by sending wrong ones.

Secrets op-proxy makes (256 random bits) are stored as their SHA-256 digest, ``sha256$<hex>``, checked
in a microsecond; a secret a person chose stays an argon2 hash, verified with argon2 once per process.
Whoever knows a client_id (it is public) and sends wrong secrets gets three checked answers a minute
for that client (``FAILURE_LIMIT``), then ``429 slow_down`` with ``Retry-After``, on every process
sharing the database.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from op_proxy.clients.throttle import FAILURE_LIMIT
from op_proxy.security import hash_secret, secret_digest
from tests.support.admin import post_form, signed_in_admin
from tests.support.rp import assert_error
from tests.support.server import ROOT, default_clients

EVERY_DATABASE = pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
APP_REDIRECT = "http://127.0.0.1:5600/callback"
CHOSEN_SECRET = "Hat Yai rain, 2026"  # what a person types: argon2 in the config
ARGON2_APP = {"client_id": "chosen-secret-app", "name": "Chosen secret",
              "client_secret_hash": hash_secret(CHOSEN_SECRET), "redirect_uris": [APP_REDIRECT]}
ATTACKS = 32


# -- helpers -----------------------------------------------------------------------------------------

def op_proxy(server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The ``op-proxy`` command an operator runs on the server's config."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OP_PROXY_")}
    return subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), *args],
                          cwd=ROOT, env=clean, input=stdin, capture_output=True, text=True, timeout=120)


def printed_secret(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    match = re.search(r"secret[^:\n]*:\s*(\S+)\s*$", result.stdout, re.M)
    assert match, result.stdout
    return match.group(1)


def database(database_url: str):
    """The same database, opened the way an older op-proxy (or a DBA) would."""
    return create_engine(database_url.replace("+aiosqlite", "").replace("+aiomysql", "+pymysql"))


def stored_secret_hash(database_url: str, client_id: str) -> str:
    engine = database(database_url)
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT secret_hash FROM clients WHERE client_id = :id"),
                                    {"id": client_id}).scalar_one()
    engine.dispose()
    return stored


def token_call(server, client_id: str, secret: str) -> httpx.Response:
    """The app redeems a made-up code: 400 invalid_grant once authenticated, 401 or 429 before."""
    return httpx.post(server.url("/token"), auth=(client_id, secret), timeout=60,
                      data={"grant_type": "authorization_code", "code": "no-such-code", "redirect_uri": APP_REDIRECT})


def authenticated(answer: httpx.Response) -> bool:
    assert answer.status_code in (400, 401, 429), answer.text
    return answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def throttled(answer: httpx.Response) -> bool:
    if answer.status_code != 429:
        return False
    assert answer.json()["error"] == "slow_down", answer.text
    assert 1 <= int(answer.headers["Retry-After"]) <= 60
    return True


def attack(server, client_id: str, times: int = ATTACKS) -> list[httpx.Response]:
    """Someone who knows the client_id sends wrong secrets, all at once."""
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(lambda n: token_call(server, client_id, f"guess-{n}"), range(times)))


# -- secrets op-proxy makes ------------------------------------------------------------------------------

def test_every_secret_op_proxy_makes_is_stored_as_its_digest_and_works(make_server, database_url):
    server = make_server()
    cli_secret = printed_secret(op_proxy(server, "clients", "add", "cli-app", "--redirect-uri", APP_REDIRECT))
    rotated = printed_secret(op_proxy(server, "clients", "rotate-secret", "cli-app"))
    admin = signed_in_admin(server)
    created = post_form(admin, server.url("/admin/clients/new"), "/admin/clients/new", **{
        "client_id": "panel-app", "name": "แอปทดสอบ", "mode": "oidc", "redirect_uris": APP_REDIRECT,
        "token_endpoint_auth_method": "client_secret_basic", "subject_type": "public",
        "allowed_scopes": ["openid", "profile"], "legacy_token_lifetime": "3600"})
    panel_secret = re.search(r'<code class="secret-value[^"]*"[^>]*>([^<]+)</code>', created.text).group(1)
    rotated_page = post_form(admin, server.url("/admin/clients/panel-app"), "/admin/clients/panel-app/rotate/secret")
    panel_rotated = re.search(r'<code class="secret-value[^"]*"[^>]*>([^<]+)</code>', rotated_page.text).group(1)

    assert stored_secret_hash(database_url, "cli-app") == secret_digest(rotated)
    assert stored_secret_hash(database_url, "panel-app") == secret_digest(panel_rotated)
    assert authenticated(token_call(server, "cli-app", rotated))
    assert authenticated(token_call(server, "panel-app", panel_rotated))
    assert not authenticated(token_call(server, "cli-app", cli_secret))
    assert not authenticated(token_call(server, "panel-app", panel_secret))


@EVERY_DATABASE
def test_an_app_registered_by_an_older_op_proxy_keeps_its_secret_and_its_hash_becomes_a_digest(
        make_server, database_url):
    server = make_server()
    secret = printed_secret(op_proxy(server, "clients", "add", "old-app", "--redirect-uri", APP_REDIRECT))
    server.stop()
    engine = database(database_url)  # as op-proxy stored every secret before: argon2
    with engine.begin() as connection:
        connection.execute(text("UPDATE clients SET secret_hash = :hash WHERE client_id = 'old-app'"),
                           {"hash": hash_secret(secret)})
    engine.dispose()
    server.start()

    assert not authenticated(token_call(server, "old-app", "not-the-secret"))
    assert stored_secret_hash(database_url, "old-app").startswith("$argon2id$")  # a wrong one changes nothing
    assert authenticated(token_call(server, "old-app", secret))
    assert stored_secret_hash(database_url, "old-app") == secret_digest(secret)
    assert authenticated(token_call(server, "old-app", secret))
    assert not authenticated(token_call(server, "old-app", "not-the-secret"))


def test_a_secret_a_person_chose_stays_argon2_in_the_config_and_in_the_database(make_server, database_url):
    from_env = {"client_id": "env-app", "name": "Secret in the environment", "client_secret_env": "ENV_APP_SECRET",
                "redirect_uris": [APP_REDIRECT]}
    server = make_server(clients=[*default_clients(), ARGON2_APP, from_env], env={"ENV_APP_SECRET": "sunny Songkhla"})

    for _ in range(2):  # argon2 the first time, the remembered digest the second
        assert authenticated(token_call(server, "chosen-secret-app", CHOSEN_SECRET))
        assert authenticated(token_call(server, "env-app", "sunny Songkhla"))
    assert not authenticated(token_call(server, "chosen-secret-app", CHOSEN_SECRET + " "))
    assert not authenticated(token_call(server, "env-app", "sunny songkhla"))
    assert stored_secret_hash(database_url, "chosen-secret-app") == ARGON2_APP["client_secret_hash"]
    assert stored_secret_hash(database_url, "env-app").startswith("$argon2id$")


def test_an_operator_puts_a_generated_secrets_digest_in_the_config(make_server):
    made = subprocess.run([sys.executable, "-m", "op_proxy.cli", "clients", "hash-secret", "--generate"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    secret = printed_secret(made)
    digest = re.search(r'^client_secret_hash = "(sha256\$[0-9a-f]{64})"$', made.stdout, re.M).group(1)
    server = make_server(clients=[*default_clients(), {"client_id": "ops-app", "name": "Configured",
                                                       "client_secret_hash": digest, "redirect_uris": [APP_REDIRECT]}])

    assert authenticated(token_call(server, "ops-app", secret))
    assert not authenticated(token_call(server, "ops-app", "demo-secret"))
    assert op_proxy(server, "clients", "hash-secret", stdin=secret + "\n").stdout.strip() == digest
    short = op_proxy(server, "clients", "hash-secret", stdin="demo-secret\n")
    assert short.returncode == 1 and "--generate" in short.stderr and "hash-password" in short.stderr
    assert "sha256$" not in short.stdout and "Traceback" not in short.stderr


def test_a_secret_pasted_where_its_hash_belongs_stops_the_start_with_the_key_named(make_server):
    server = make_server()
    config = server.config_path.read_text()
    server.config_path.write_text(config.replace(secret_digest("demo-secret"), "demo-secret", 1))

    result = op_proxy(server, "init")

    assert result.returncode == 2
    assert "clients[0].client_secret_hash" in result.stderr and "hash-secret" in result.stderr
    assert "Traceback" not in result.stderr


# -- someone who knows a client_id ------------------------------------------------------------------------

@EVERY_DATABASE
def test_wrong_secrets_for_an_argon2_secret_are_checked_a_few_times_then_refused_unchecked_on_every_process(
        make_server, database_url):
    first = make_server(clients=[*default_clients(), ARGON2_APP])
    second = make_server(clients=[*default_clients(), ARGON2_APP])  # another process, same database

    answers = attack(first, "chosen-secret-app")

    # as many argon2 checks as FAILURE_LIMIT, one after the other; none after them
    assert sum(a.status_code == 401 for a in answers) == FAILURE_LIMIT
    assert sum(throttled(a) for a in answers) == ATTACKS - FAILURE_LIMIT
    # Neither process has verified the right secret yet, so neither can tell it from a guess without
    # argon2: that they refuse it proves they no longer run argon2 for this client.
    assert throttled(token_call(first, "chosen-secret-app", CHOSEN_SECRET))
    assert throttled(token_call(second, "chosen-secret-app", CHOSEN_SECRET))
    assert throttled(token_call(second, "chosen-secret-app", "another guess"))
    assert authenticated(token_call(second, "demo", "demo-secret"))  # other apps are not concerned


def test_an_app_with_a_generated_secret_keeps_working_while_someone_guesses_at_it(make_server):
    server = make_server()

    answers = attack(server, "second-app")

    assert sum(a.status_code == 401 for a in answers) == FAILURE_LIMIT
    assert sum(throttled(a) for a in answers) == ATTACKS - FAILURE_LIMIT
    assert authenticated(token_call(server, "second-app", "demo-secret"))  # a digest: checking costs nothing
    assert throttled(token_call(server, "second-app", "one more guess"))


# -- malformed credentials ---------------------------------------------------------------------------------

def basic(raw: bytes) -> bytes:
    return b"Basic " + base64.b64encode(raw)


MALFORMED_BASIC = {
    "latin-1 byte in the header": b"Basic \xff\xfe" + base64.b64encode(b"demo:demo-secret"),
    "not utf-8 once decoded": basic(b"demo\xff:demo-secret"),
    "thai client_id": basic("แอป:demo-secret".encode()),
    "emoji client_id": basic("\U0001f600:demo-secret".encode()),
    "no colon": basic(b"demo"),
}


@EVERY_DATABASE
@pytest.mark.parametrize("endpoint", ["/token", "/introspect", "/revoke"])
def test_basic_credentials_that_are_not_ascii_or_utf8_are_an_invalid_client(make_server, endpoint):
    server = make_server()

    for name, header in MALFORMED_BASIC.items():
        answer = httpx.post(server.url(endpoint), headers={"Authorization": header},
                            data={"grant_type": "refresh_token", "refresh_token": "x", "token": "x"})
        assert answer.status_code == 401, (name, answer.status_code, answer.text)
        assert_error(answer, "invalid_client", status=401)
    assert "Traceback" not in server.log()
