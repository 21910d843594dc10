"""Running op-proxy as docs/deploy.md says: the systemd unit of examples/deploy/ is one systemd
accepts, and a backup made with examples/deploy/backup.sh, restored with restore.sh into a fresh
database and keys directory on a machine that lost both, honours every token issued before it."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pymysql
import pytest
from sqlalchemy.engine import make_url

from op_proxy.config import load_settings
from tests.conftest import ServerFactory
from tests.support.databases import (
    MARIADB_HOST,
    MARIADB_PASSWORD,
    MARIADB_PORT,
    MARIADB_USER,
    MariaDbDatabase,
    sqlite_url,
)
from tests.support.peers import require_peer
from tests.support.person import Person
from tests.support.rp import App, verify_id_token
from tests.support.server import DEMO_SECRET_HASH, ROOT, default_clients, free_port, write_config

DEPLOY = ROOT / "examples" / "deploy"
DEMO_REDIRECT = "http://127.0.0.1:5000/callback"
CLINIC = {"client_id": "clinic", "name": "Clinic", "client_secret_hash": DEMO_SECRET_HASH,
          "subject_type": "pairwise", "redirect_uris": ["http://clinic.localhost:5300/callback"]}
CLIENTS = default_clients() + [CLINIC]


def systemd_analyze_or_skip() -> str:
    found = shutil.which("systemd-analyze")
    require_peer("systemd-analyze", found is not None, "not installed (Debian package systemd)")
    return found


def installed_copy(name: str, directory: Path, installed: str, here: Path) -> Path:
    """A unit of examples/deploy/ with its program where this checkout has it (systemd-analyze
    verify checks that ExecStart's program exists)."""
    text = (DEPLOY / name).read_text(encoding="utf-8")
    assert installed in text
    unit = directory / name
    unit.write_text(text.replace(installed, str(here)), encoding="utf-8")
    return unit


def test_the_service_units_are_ones_systemd_accepts_and_op_proxy_rates_well_hardened(tmp_path):
    analyze = systemd_analyze_or_skip()
    service = installed_copy("op-proxy.service", tmp_path, "/opt/op-proxy/.venv/bin/op-proxy",
                             Path(sys.executable).parent / "op-proxy")
    backup = installed_copy("op-proxy-backup.service", tmp_path, "/opt/op-proxy/examples/deploy/backup.sh",
                            DEPLOY / "backup.sh")
    timer = Path(shutil.copy(DEPLOY / "op-proxy-backup.timer", tmp_path))

    verified = subprocess.run([analyze, "verify", str(service), str(backup), str(timer)],
                              capture_output=True, text=True, timeout=60)
    # systemd only warns about an unknown key or a bad value, so any output at all is a failure.
    assert verified.returncode == 0 and verified.stdout + verified.stderr == "", verified.stdout + verified.stderr
    # Exposure on systemd's 0 (locked down) to 10 (unprotected) scale: 2.0 or less is "OK".
    rated = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(service)],
                           capture_output=True, text=True, timeout=60)
    assert rated.returncode == 0, rated.stdout + rated.stderr

    lines = set((DEPLOY / "op-proxy.service").read_text(encoding="utf-8").splitlines())
    for setting in ("User=op-proxy", "StateDirectory=op-proxy", "Restart=on-failure", "NoNewPrivileges=yes",
                    "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "ReadWritePaths=/var/lib/op-proxy"):
        assert setting in lines, setting


def mariadb_client_options(user: str = MARIADB_USER, password: str = MARIADB_PASSWORD) -> list[str]:
    options = [f"--host={MARIADB_HOST}", f"--port={MARIADB_PORT}", f"--user={user}"]
    return options + ([f"--password={password}"] if password else [])


def run_script(name: str, *args, options: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DEPLOY / name), *map(str, args), *(options or mariadb_client_options())],
                          capture_output=True, text=True, timeout=120)


def mariadb_admin(*statements: str) -> None:
    connection = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER,
                                 password=MARIADB_PASSWORD, autocommit=True)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    connection.close()


@pytest.fixture
def backup_user(database_url):
    """A MariaDB account with only the privileges docs/deploy.md grants the backup."""
    name, password = "op_proxy_backup_" + secrets.token_hex(4), secrets.token_urlsafe(16)
    database = make_url(database_url).database
    mariadb_admin(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'",
                  f"GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES ON `{database}`.* TO '{name}'@'%'")
    yield mariadb_client_options(name, password)
    mariadb_admin(f"DROP USER IF EXISTS '{name}'@'%'")


def sign_in(server, client_id: str, redirect_uri: str) -> dict:
    person = Person(server.issuer)
    try:
        return App(server.issuer, client_id, redirect_uri, scope="openid profile email").sign_in(person)
    finally:
        person.close()


@pytest.fixture
def fresh_database():
    database = MariaDbDatabase()
    yield database
    database.drop()


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
def test_a_restored_backup_honours_the_tokens_issued_before_it(make_server, database_url, fresh_database, backup_user,
                                                               tmp_path):
    original = make_server(clients=CLIENTS)
    before = sign_in(original, "demo", DEMO_REDIRECT)
    clinic_sub = verify_id_token(original.issuer, sign_in(original, "clinic", CLINIC["redirect_uris"][0])["id_token"],
                                 "clinic")["sub"]
    database = make_url(database_url).database

    # Backed up while op-proxy serves.
    made = run_script("backup.sh", tmp_path / "backups", database, tmp_path / "keys", options=backup_user)
    assert made.returncode == 0, made.stderr
    backup = Path(made.stdout.strip())
    assert (backup / "database.sql").stat().st_size > 0 and list((backup / "keys").glob("*.jwk.json"))

    # The machine is lost: op-proxy, its database and its keys directory are gone.
    original.stop()
    mariadb_admin(f"DROP DATABASE `{database}`")
    shutil.rmtree(tmp_path / "keys")

    # Restored into a fresh database and keys directory; restore.sh will not overwrite a database in use.
    restored_dir = tmp_path / "restored"
    restored_dir.mkdir()
    restoring = run_script("restore.sh", backup, fresh_database.name, restored_dir / "keys")
    assert restoring.returncode == 0, restoring.stderr
    over_it = run_script("restore.sh", backup, fresh_database.name, tmp_path / "elsewhere")
    assert over_it.returncode == 1 and "not empty" in over_it.stderr

    factory = ServerFactory(restored_dir, fresh_database.url)
    factory.issuer_port = make_server.issuer_port  # the same issuer, as the same DNS name would be
    try:
        restored = factory(clients=CLIENTS)
        assert restored.issuer == original.issuer

        # The access token issued before the backup still works, and is still active.
        userinfo = httpx.get(restored.url("/userinfo"), headers={"Authorization": "Bearer " + before["access_token"]})
        assert userinfo.status_code == 200, userinfo.text
        assert userinfo.json()["sub"] == verify_id_token(restored.issuer, before["id_token"], "demo")["sub"]
        introspected = httpx.post(restored.url("/introspect"), auth=("demo", "demo-secret"),
                                  data={"token": before["access_token"]}).json()
        assert introspected["active"] is True and introspected["client_id"] == "demo"

        # The refresh token issued before the backup refreshes, once (it rotates as always).
        refreshed = httpx.post(restored.url("/token"), auth=("demo", "demo-secret"),
                               data={"grant_type": "refresh_token", "refresh_token": before["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["refresh_token"] != before["refresh_token"]
        assert httpx.get(restored.url("/userinfo"), headers={
            "Authorization": "Bearer " + refreshed.json()["access_token"]}).status_code == 200

        # The pairwise salt came back with keys/: the clinic still knows the person by the same sub.
        again_sub = verify_id_token(restored.issuer, sign_in(restored, "clinic", CLINIC["redirect_uris"][0])[
            "id_token"], "clinic")["sub"]
        assert again_sub == clinic_sub
    finally:
        factory.stop_all()


def test_after_init_keys_holds_every_secret_so_a_copy_serves_a_second_machine(tmp_path):
    """A university without a shared file system copies keys/ from the first machine to the others:
    the copy must already hold the pairwise salt and the data key, or each machine would make its
    own at first use and the machines would disagree on who a person is."""
    config = write_config(tmp_path, port=free_port(), database_url=sqlite_url(tmp_path))
    done = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(config), "init"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    keys = tmp_path / "keys"
    assert (keys / "pairwise-subject.salt").stat().st_size > 0
    assert (keys / "data-encryption.key").stat().st_size > 0
    assert len(list(keys.glob("*.jwk.json"))) == 1


def toml_blocks(markdown: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", markdown, re.S)


def test_the_production_config_of_the_deploy_guide_is_one_op_proxy_accepts(tmp_path, monkeypatch):
    """Copied word for word from docs/deploy.md (in either language), with the secrets in the
    environment as the guide says, the config loads: an https issuer, secure cookies, the keys in
    the state directory, the database from OP_PROXY_DATABASE_URL."""
    guide = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = [block for block in toml_blocks(guide) if "[server]" in block]
    assert len(blocks) == 2, "one production config in Thai, one in English"
    url = "mysql+aiomysql://op_proxy:p%40ss@db1.example.ac.th/op_proxy?charset=utf8mb4"
    monkeypatch.setenv("OP_PROXY_DATABASE_URL", url)  # what secrets.env gives the service
    monkeypatch.setenv("PSU_CLIENT_SECRET", "from-env")
    for index, block in enumerate(blocks):
        config = tmp_path / f"op-proxy-{index}.toml"
        config.write_text(block, encoding="utf-8")
        settings = load_settings(config)
        assert settings.issuer == "https://sso.example.ac.th" and settings.server.secure_cookies
        assert [str(network) for network in settings.server.trusted_proxies] == ["10.0.0.5/32"]
        assert settings.database_url == url and settings.keys.directory == "/var/lib/op-proxy/keys"
        assert settings.upstreams["psu"].oidc.client_secret == "from-env"
