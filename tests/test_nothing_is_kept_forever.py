"""Nothing is kept forever: what expired is deleted by `op-proxy db purge` and by every process in
the background, audit events are kept for `[audit] retention_days`, and nothing a person or an app
can still use is touched (a current refresh token, a live SSO session, a rotated refresh token whose
replay must still be caught). SQLite and MariaDB alike."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from admin import dashboard
from op_proxy.config import ConfigError, load_settings
from op_proxy.storage import Database, housekeeping
from op_proxy.storage.database import upgrade_schema
from op_proxy.storage.models import (
    AccessToken,
    AdminSession,
    AuditEvent,
    AuthorizationCode,
    ClientAuthFailures,
    Grant,
    PendingLogin,
    RefreshToken,
    SsoSession,
    UpstreamLogin,
    UsedJti,
)
from tests.support.person import Person
from tests.support.rp import App, assert_error
from tests.support.server import ROOT, free_port, write_config

EVERY_DATABASE = pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
DAY = 86400

# Everything a flow leaves behind lives a few seconds (enough for a person to type a password and an
# app to refresh at once on a busy machine).
SHORT_LIFETIMES = {
    "OP_PROXY_TOKENS_AUTHORIZATION_CODE_LIFETIME": "3",
    "OP_PROXY_TOKENS_ACCESS_TOKEN_LIFETIME": "3",
    "OP_PROXY_TOKENS_ID_TOKEN_LIFETIME": "3",
    "OP_PROXY_TOKENS_REFRESH_TOKEN_LIFETIME": "4",
    "OP_PROXY_TOKENS_PENDING_LOGIN_LIFETIME": "5",
    "OP_PROXY_SERVER_SESSION_LIFETIME": "4",
}
LONGEST_SHORT_LIFETIME = 5
GRACE = 1  # [storage] purge_grace for these stories: a row goes one second after it expired

# What a flow leaves in the database, by table, and each row's primary key.
FLOW_TABLES = {
    "pending_logins": PendingLogin.id_digest, "upstream_logins": UpstreamLogin.state_digest,
    "authorization_codes": AuthorizationCode.code_digest, "access_tokens": AccessToken.jti,
    "refresh_tokens": RefreshToken.token_digest, "grants": Grant.id, "sso_sessions": SsoSession.cookie_digest,
}


# -- an application and the operator's shell ----------------------------------------------------------

def demo_app(server, client_id: str = "demo", redirect_uri: str = "http://127.0.0.1:5000/callback") -> App:
    return App(server.issuer, client_id, redirect_uri, scope="openid profile")


def operator_env(**overrides) -> dict:
    """The operator's shell: nothing of the test runner's own OP_PROXY_* settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("OP_PROXY_")}
    return {**env, **overrides}


def purge_command(config_path, **env) -> subprocess.Popen:
    """``op-proxy db purge``, as cron or an operator runs it."""
    return subprocess.Popen([sys.executable, "-m", "op_proxy.cli", "--config", str(config_path), "db", "purge"],
                            cwd=ROOT, env=operator_env(OP_PROXY_STORAGE_PURGE_GRACE=str(GRACE), **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_purge(config_path, **env) -> dict[str, int]:
    process = purge_command(config_path, **env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return purge_report(out)


def purge_report(out: str) -> dict[str, int]:
    """{table: rows deleted} from what the command prints."""
    return {name: int(count) for name, count in (line.split() for line in out.splitlines()[1:] if line.strip())}


# -- looking into the database, as the storage layer sees it ------------------------------------------

def in_database(database_url: str, action):
    async def go():
        db = Database(database_url)
        try:
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(go())


def row_keys(database_url: str) -> dict[str, set]:
    async def read(db):
        async with db.session() as session:
            return {table: set((await session.scalars(select(key))).all()) for table, key in FLOW_TABLES.items()}

    return in_database(database_url, read)


def add_rows(database_url: str, rows: list) -> None:
    async def write(db):
        async with db.transaction() as session:
            session.add_all(rows)

    in_database(database_url, write)


def count(database_url: str, model) -> int:
    async def read(db):
        async with db.session() as session:
            return await session.scalar(select(func.count()).select_from(model))

    return in_database(database_url, read)


def audit_events_aged(days: float, how_many: int = 1) -> list[AuditEvent]:
    at = int(time.time() - days * DAY)
    return [AuditEvent(at=at, event="sign_in", outcome="success", client_id="demo", sub=f"aged-{days}",
                       upstream="local", ip="192.0.2.1", detail={}) for _ in range(how_many)]


def dashboard_figures(database_url: str, settings, at: int) -> dict:
    """The admin dashboard's figures as they read at one moment (pinned, so an hour turning between
    two readings cannot change them)."""
    async def read(db):
        return await dashboard.figures(SimpleNamespace(settings=settings, db=db, connectors={}), now=at, locale="en")

    return in_database(database_url, read)


def wait_until(condition, seconds: float = 60, step: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "it did not happen"
        time.sleep(step)


# -- the story ---------------------------------------------------------------------------------------------

@EVERY_DATABASE
def test_a_purge_deletes_what_expired_and_everything_still_usable_keeps_working(make_server, database_url):
    # Monday: op-proxy runs with lifetimes of a few seconds. Somchai signs in, the app refreshes
    # once, he signs in to a second app whose code is never redeemed, and someone gives up half-way.
    server = make_server(env=SHORT_LIFETIMES)
    app, second_app = demo_app(server), demo_app(server, "second-app", "http://127.0.0.1:5002/callback")
    somchai = Person(server.issuer)
    short_lived = app.sign_in(somchai)
    assert app.refresh(short_lived["refresh_token"]).status_code == 200
    second_app.code_for(somchai)  # and the app never redeems it
    gave_up = Person(server.issuer)
    gave_up.visit(app.authorization_url())  # a password page nobody fills in
    gave_up.close()
    short_lived_rows = row_keys(database_url)
    monday_ends = time.time()
    assert all(short_lived_rows[table] for table in FLOW_TABLES if table != "upstream_logins")

    # Tuesday: back to the usual lifetimes. Somying signs in and her app refreshes once; the refresh
    # token it used is rotated but stays on record, so a replay is still caught.
    for name in SHORT_LIFETIMES:
        server.env.pop(name)
    server.restart()
    somying = Person(server.issuer, username="other", password="other-password")
    tokens = app.sign_in(somying)
    rotated = tokens["refresh_token"]
    current = app.refresh(rotated).json()["refresh_token"]
    live_rows = {table: keys - short_lived_rows[table] for table, keys in row_keys(database_url).items()}
    # Audit events from long ago: one past the 365 days op-proxy keeps them by default, one within.
    add_rows(database_url, audit_events_aged(366) + audit_events_aged(364))
    # Monday's lifetimes run out (so the dashboard counts Somying's session alone, however fast Tuesday went).
    time.sleep(max(0.0, monday_ends + LONGEST_SHORT_LIFETIME + GRACE + 1.5 - time.time()))
    settings = load_settings(server.config_path, environ={})
    pinned = int(time.time())
    figures_before = dashboard_figures(database_url, settings, pinned)
    assert figures_before["active_sessions"] == 1 and figures_before["signins_24h"] >= 2

    # The operator runs the purge.
    deleted = run_purge(server.config_path)

    after = row_keys(database_url)
    for table in FLOW_TABLES:
        assert not after[table] & short_lived_rows[table], f"expired {table} are still stored"
        assert live_rows[table] <= after[table], f"usable {table} were deleted"
        assert deleted[table] == len(short_lived_rows[table]), table
    assert deleted["audit_events"] == 1
    assert "aged-364" in audit_subjects(database_url) and "aged-366" not in audit_subjects(database_url)
    assert dashboard_figures(database_url, settings, pinned) == figures_before

    # Somying's session and current refresh token still work ...
    assert "code" in app.silent_sign_in(somying).params
    refreshed = app.refresh(current)
    assert refreshed.status_code == 200, refreshed.text
    # ... and replaying the rotated one still revokes everything that came from it (RFC 9700 §4.14.2).
    assert_error(app.refresh(rotated), "invalid_grant")
    assert_error(app.refresh(refreshed.json()["refresh_token"]), "invalid_grant")
    # Somchai's session is gone: a silent sign-in says he must sign in again.
    assert app.silent_sign_in(somchai).params["error"] == "login_required"


def audit_subjects(database_url: str) -> set:
    async def read(db):
        async with db.session() as session:
            return set((await session.scalars(select(AuditEvent.sub))).all())

    return in_database(database_url, read)


# -- every rule, row by row --------------------------------------------------------------------------------

def stored_rows(now: int) -> tuple[list, dict[str, set]]:
    """One row of each kind that must go (``gone``) and of each kind that must stay (``kept``)."""
    past, future, just_expired, long_ago = now - 600, now + 600, now - 10, now - 400 * DAY
    rows, gone, kept = [], {}, {}

    def add(row, key: str, table: str, *, goes: bool):
        rows.append(row)
        (gone if goes else kept).setdefault(table, set()).add(key)

    def pending(key, expires_at, goes):
        add(PendingLogin(id_digest=key, client_id="demo", params={}, browser_digest="b", created_at=past - 900,
                         expires_at=expires_at), key, "pending_logins", goes=goes)

    pending("pending-expired", past, True)
    pending("pending-in-grace", just_expired, False)  # 10 s ago, within a 60 s grace
    pending("pending-live", future, False)
    for key, expires_at, goes in (("upstream-expired", past, True), ("upstream-live", future, False)):
        add(UpstreamLogin(state_digest=key, login_id="l", upstream="local", created_at=past, expires_at=expires_at),
            key, "upstream_logins", goes=goes)

    def grant(key, sid, *, created_at=long_ago, revoked=False, goes):
        add(Grant(id=key, client_id="demo", sub="s", sid=sid, scope="openid", auth_time=created_at, amr=[],
                  created_at=created_at, revoked_at=now if revoked else None), key, "grants", goes=goes)

    grant("grant-spent", "sid-expired", goes=True)  # every token it gave has expired
    grant("grant-refreshable", "sid-expired-but-refreshable", goes=False)
    grant("grant-replay-watch", "sid-ended", revoked=True, goes=False)  # only a rotated refresh token left
    grant("grant-just-made", "sid-live", created_at=now, goes=False)  # its code is being written
    grant("grant-access-only", "sid-live", goes=False)

    def code(key, grant_id, expires_at, goes):
        add(AuthorizationCode(code_digest=key, grant_id=grant_id, client_id="demo", redirect_uri="u",
                              expires_at=expires_at, consumed_at=past), key, "authorization_codes", goes=goes)

    code("code-expired", "grant-spent", past, True)
    code("code-live", "grant-access-only", future, False)
    for key, grant_id, expires_at, goes in (("at-expired", "grant-spent", past, True),
                                            ("at-live", "grant-access-only", future, False)):
        add(AccessToken(jti=key, grant_id=grant_id, client_id="demo", expires_at=expires_at), key, "access_tokens",
            goes=goes)

    def refresh(key, grant_id, expires_at, goes, rotated=False):
        add(RefreshToken(token_digest=key, grant_id=grant_id, client_id="demo", created_at=past,
                         expires_at=expires_at, rotated_at=past if rotated else None), key, "refresh_tokens",
            goes=goes)

    refresh("rt-expired-rotated", "grant-spent", past, True, rotated=True)
    refresh("rt-expired", "grant-spent", past, True)
    refresh("rt-rotated-not-yet-expired", "grant-replay-watch", future, False, rotated=True)
    refresh("rt-current", "grant-refreshable", future, False)

    def sso(key, sid, expires_at, *, ended_at=None, goes):
        add(SsoSession(cookie_digest=key, sid=sid, sub="s", upstream="local", auth_time=past, amr=[],
                       created_at=past, expires_at=expires_at, ended_at=ended_at), key, "sso_sessions", goes=goes)

    sso("sso-expired", "sid-expired", past, goes=True)
    sso("sso-ended", "sid-ended", future, ended_at=past, goes=True)  # its grants are revoked
    # Expired, but an app may still refresh a grant made in it, and that asks the upstream with the
    # refresh token this session keeps.
    sso("sso-expired-but-refreshable", "sid-expired-but-refreshable", past, goes=False)
    sso("sso-live", "sid-live", future, goes=False)
    for key, expires_at, goes in (("jti-expired", past, True), ("jti-live", future, False)):
        add(UsedJti(jti_digest=key, expires_at=expires_at), key, "used_jtis", goes=goes)
    for key, expires_at, goes in (("admin-expired", past, True), ("admin-live", future, False)):
        add(AdminSession(cookie_digest=key, admin_id=1, csrf_token="c", created_at=past, expires_at=expires_at),
            key, "admin_sessions", goes=goes)
    # Wrong client secrets are counted a minute at a time: a minute long over goes, the current one stays.
    for key, started_at, goes in (("guessed-last-week", past, True), ("guessed-just-now", now - 10, False)):
        add(ClientAuthFailures(client_id=key, window_started_at=started_at, failures=3), key, "client_auth_failures",
            goes=goes)
    return rows, {"gone": gone, "kept": kept}


EVERY_TABLE = {**FLOW_TABLES, "used_jtis": UsedJti.jti_digest, "admin_sessions": AdminSession.cookie_digest,
               "client_auth_failures": ClientAuthFailures.client_id}


@EVERY_DATABASE
def test_each_kind_of_row_goes_exactly_when_nothing_can_use_it_any_more(tmp_path, database_url):
    settings = load_settings(write_config(tmp_path, port=free_port(), database_url=database_url), environ={})
    assert settings.storage.purge_grace == 60 and settings.audit.retention_days == 365
    upgrade_schema(database_url)
    now = int(time.time())
    rows, expected = stored_rows(now)
    add_rows(database_url, rows + audit_events_aged(366, 3) + audit_events_aged(364, 2))

    deleted = in_database(database_url, lambda db: housekeeping.purge(db, settings, now=now))

    async def remaining(db):
        async with db.session() as session:
            return {table: set((await session.scalars(select(key))).all()) for table, key in EVERY_TABLE.items()}

    left = in_database(database_url, remaining)
    for table in EVERY_TABLE:
        assert left[table] == expected["kept"].get(table, set()), table
        assert deleted[table] == len(expected["gone"].get(table, set())), table
    assert deleted["audit_events"] == 3 and count(database_url, AuditEvent) == 2
    # A second purge finds nothing more to do.
    again = in_database(database_url, lambda db: housekeeping.purge(db, settings, now=now))
    assert not any(again.values())


# -- in the background, and several at once ---------------------------------------------------------------

def expired_leftovers(how_many: int) -> list:
    """What thousands of finished sign-ins leave behind once everything in them has expired."""
    long_ago = int(time.time()) - 3 * DAY
    rows = []
    for index in range(how_many):
        grant_id, sid = f"g{index:06d}", f"s{index:06d}"
        rows += [
            PendingLogin(id_digest=f"p{index:06d}", client_id="demo", params={}, browser_digest="b",
                         created_at=long_ago, expires_at=long_ago + 900),
            Grant(id=grant_id, client_id="demo", sub="s", sid=sid, scope="openid", auth_time=long_ago, amr=[],
                  created_at=long_ago),
            AccessToken(jti=f"a{index:06d}", grant_id=grant_id, client_id="demo", expires_at=long_ago + 900),
            RefreshToken(token_digest=f"r{index:06d}", grant_id=grant_id, client_id="demo", created_at=long_ago,
                         expires_at=long_ago + DAY),
            SsoSession(cookie_digest=f"c{index:06d}", sid=sid, sub="s", upstream="local", auth_time=long_ago,
                       amr=[], created_at=long_ago, expires_at=long_ago + 8 * 3600),
        ]
    return rows


def leftovers_count(database_url: str) -> int:
    return sum(count(database_url, model) for model in (PendingLogin, Grant, AccessToken, RefreshToken, SsoSession))


@EVERY_DATABASE
def test_every_process_purges_in_the_background_without_anyone_running_the_command(make_server, database_url):
    server = make_server(env={"OP_PROXY_STORAGE_PURGE_INTERVAL": "1", "OP_PROXY_STORAGE_PURGE_GRACE": str(GRACE)})
    add_rows(database_url, expired_leftovers(20) + audit_events_aged(400, 3))
    tokens = demo_app(server).sign_in(Person(server.issuer))

    wait_until(lambda: leftovers_count(database_url) == 5)  # left: the rows of the sign-in just made

    assert count(database_url, Grant) == 1 and count(database_url, RefreshToken) == 1
    assert "aged-400" not in audit_subjects(database_url)
    assert demo_app(server).refresh(tokens["refresh_token"]).status_code == 200
    assert "purged " in server.log()
    server.stop()
    assert "Traceback" not in server.log() and "Task was destroyed" not in server.log()


@EVERY_DATABASE
def test_two_purges_at_once_share_the_work_and_neither_fails(tmp_path, database_url):
    config = write_config(tmp_path, port=free_port(), database_url=database_url)
    upgrade_schema(database_url)
    how_many = 2 * housekeeping.BATCH + 100  # several batches each
    add_rows(database_url, expired_leftovers(how_many) + audit_events_aged(400, how_many))

    first, second = purge_command(config), purge_command(config)
    reports = []
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        reports.append(purge_report(out))

    assert leftovers_count(database_url) == 0 and count(database_url, AuditEvent) == 0
    for table in ("pending_logins", "grants", "access_tokens", "refresh_tokens", "sso_sessions", "audit_events"):
        assert reports[0][table] + reports[1][table] == how_many, table  # each row deleted once


# -- settings ------------------------------------------------------------------------------------------------

def test_retention_and_purge_settings_are_checked_at_start(tmp_path):
    config = write_config(tmp_path, port=free_port(), database_url="sqlite+aiosqlite:///unused.sqlite3",
                          extra="[audit]\nretention_days = 30\n\n[storage]\npurge_interval = 0\n")
    settings = load_settings(config, environ={})
    assert settings.audit.retention_days == 30 and settings.storage.purge_interval == 0
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={"OP_PROXY_AUDIT_RETENTION_DAYS": "0"})
    assert refused.value.key == "audit.retention_days"
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={"OP_PROXY_STORAGE_PURGE_GRACE": "-5"})
    assert refused.value.key == "storage.purge_grace"


async def test_the_background_purge_starts_with_the_server_and_stops_with_it(tmp_path):
    from op_proxy.app import create_app

    config = write_config(tmp_path, port=free_port(), database_url=f"sqlite+aiosqlite:///{tmp_path}/op.sqlite3")
    app = create_app(load_settings(config, environ={"OP_PROXY_STORAGE_PURGE_INTERVAL": "1"}))

    def purges() -> list[asyncio.Task]:
        return [task for task in asyncio.all_tasks() if task.get_name() == "purge"]

    async with app.test_app():
        running = purges()
        assert len(running) == 1 and not running[0].done()
    assert running[0].cancelled() and not purges()
