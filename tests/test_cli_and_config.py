"""An administrator runs the ``op-proxy`` command and edits its config file.

Every command runs as a real process (``python -m op_proxy.cli --config <file> ...``) on a config
and an SQLite database of the test's own, as an admin would run it on a server.
"""

from __future__ import annotations

import argparse
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from op_proxy.cli import build_parser
from op_proxy.config import load_settings
from op_proxy.security import secret_digest
from op_proxy.storage.models import Client
from tests.support.databases import sqlite_url
from tests.support.person import Arrival, Person
from tests.support.rp import App, assert_error, authlib_client, discovery, verify_id_token
from tests.support.server import DEMO_PASSWORD_HASH, ROOT, OpProxyServer, free_port, write_config
from tests.support.stored import stored_values, table_names
from tests.support.user_handler import UserHandlerApp

APP_REDIRECT = "https://app.example.org/cb"


# -- helpers -------------------------------------------------------------------------------------

def op_proxy(config: Path, *args: str, env: dict | None = None, stdin: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``op-proxy --config <config> <args>`` as the admin would, in a clean environment
    (no OP_PROXY_* variables but those given)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OP_PROXY_")}
    return subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(config), *args],
                          cwd=ROOT, env={**clean, **(env or {})}, input=stdin, capture_output=True,
                          text=True, timeout=timeout)


def succeeded(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def printed_secret(output: str) -> str:
    match = re.search(r"secret[^:\n]*:\s*(\S+)\s*$", output, re.M)
    assert match, f"no secret in:\n{output}"
    return match.group(1)


class Site:
    """One op-proxy installation in a temporary directory: its config file, database and keys."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.database = directory / "op-proxy.sqlite3"
        self.database_url = sqlite_url(directory)
        self.config = write_config(directory, port=self.port, database_url=self.database_url)
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.servers: list[OpProxyServer] = []

    def run(self, *args: str, **options) -> subprocess.CompletedProcess:
        return op_proxy(self.config, *args, **options)

    def serve(self, env: dict | None = None) -> OpProxyServer:
        server = OpProxyServer(self.config, self.port, env=env)
        self.servers.append(server)
        return server.start()

    def stop(self):
        for server in self.servers:
            server.stop()

    def stored_secret_hash(self, client_id: str) -> str | None:
        rows = stored_values(self.database_url, select(Client.secret_hash).where(Client.client_id == client_id))
        assert rows, f"client {client_id} is not in the database"
        return rows[0]


@pytest.fixture
def site(tmp_path):
    installation = Site(tmp_path)
    yield installation
    installation.stop()


def app_at(server, client_id: str, secret: str) -> App:
    return App(server.issuer, client_id, APP_REDIRECT, secret=secret, scope="openid profile email")


def code_for(app: App) -> str:
    """A person signs in to the application at a browser of their own; the code it brings back."""
    person = Person(app.issuer)
    try:
        return app.code_for(person)
    finally:
        person.close()


# -- init ----------------------------------------------------------------------------------------

def test_init_creates_the_database_and_a_private_signing_key(site):
    assert not site.database.exists()

    output = succeeded(site.run("init"))

    assert site.database.exists()
    key_files = list((site.directory / "keys").glob("*.jwk.json"))
    assert len(key_files) == 1
    assert stat.S_IMODE(key_files[0].stat().st_mode) == 0o600, "the private key is readable by others"
    kid = key_files[0].name.removesuffix(".jwk.json")
    assert "database ready" in output and kid in output
    config_clients = set(stored_values(site.database_url, select(Client.client_id).where(Client.source == "config")))
    assert {"demo", "demo-spa"} <= config_clients

    # Running it again changes nothing: same key.
    again = succeeded(site.run("init"))
    assert kid in again
    assert list((site.directory / "keys").glob("*.jwk.json")) == key_files


# -- clients -------------------------------------------------------------------------------------

def test_a_registered_app_sees_its_secret_once_and_signs_people_in_with_it(site):
    output = succeeded(site.run("clients", "add", "myapp", "--name", "My App", "--redirect-uri", APP_REDIRECT))
    secret = printed_secret(output)
    assert "myapp" in output and len(secret) >= 32

    shown = succeeded(site.run("clients", "show", "myapp"))
    listed = succeeded(site.run("clients", "list"))
    assert '"client_id": "myapp"' in shown and APP_REDIRECT in shown
    assert "myapp" in listed and "My App" in listed
    for text in (shown, listed):
        assert secret not in text

    stored = site.stored_secret_hash("myapp")
    assert stored == secret_digest(secret) and secret not in stored  # 256 random bits: a SHA-256 is enough

    server = site.serve()
    metadata = discovery(server.issuer)
    app = authlib_client(server.issuer, "myapp", secret, APP_REDIRECT)
    url, state = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier="m" * 43,
                                              nonce="n-myapp")
    person = Person(server.issuer)
    arrival = person.sign_in(url)
    person.close()
    assert isinstance(arrival, Arrival) and arrival.url.startswith(APP_REDIRECT + "?")
    token = app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url,
                            code_verifier="m" * 43)
    claims = verify_id_token(server.issuer, token["id_token"], "myapp", nonce="n-myapp")
    assert claims["preferred_username"] == "demo" and claims["aud"] in ("myapp", ["myapp"])


def test_rotating_a_secret_locks_out_the_old_one_and_the_new_one_works(site):
    secret = printed_secret(succeeded(site.run("clients", "add", "myapp", "--redirect-uri", APP_REDIRECT)))
    server = site.serve()

    rotated = succeeded(site.run("clients", "rotate-secret", "myapp"))  # while the server runs
    new_secret = printed_secret(rotated)
    assert new_secret != secret and "myapp" in rotated

    app = app_at(server, "myapp", secret)
    code = code_for(app)
    assert_error(app.exchange(code), "invalid_client", status=401)
    accepted = replace(app, secret=new_secret).exchange(code)
    assert accepted.status_code == 200, accepted.text
    assert verify_id_token(server.issuer, accepted.json()["id_token"], "myapp")["preferred_username"] == "demo"


def test_clients_from_the_config_file_are_changed_there_and_removed_clients_are_gone(site):
    succeeded(site.run("init"))
    succeeded(site.run("clients", "add", "myapp", "--redirect-uri", APP_REDIRECT))

    for command in ("rotate-secret", "remove"):
        result = site.run("clients", command, "demo")
        assert result.returncode == 1, result.stdout
        assert "config file" in result.stderr and "demo" in result.stderr
        assert "Traceback" not in result.stderr
    assert site.stored_secret_hash("demo") == secret_digest("demo-secret")  # untouched

    removed = succeeded(site.run("clients", "remove", "myapp"))
    assert "myapp" in removed and "removed" in removed
    shown = site.run("clients", "show", "myapp")
    assert shown.returncode == 1
    assert "no client myapp" in shown.stderr
    assert "myapp" not in succeeded(site.run("clients", "list"))


def test_a_plain_http_redirect_uri_on_a_real_host_is_refused(site):
    result = site.run("clients", "add", "webapp", "--redirect-uri", "http://app.example.org/cb")

    assert result.returncode == 1
    assert "redirect_uris" in result.stderr and "http://app.example.org/cb" in result.stderr
    assert "loopback" in result.stderr and "Traceback" not in result.stderr
    assert "secret" not in result.stdout
    assert "webapp" not in succeeded(site.run("clients", "list"))


def test_a_public_client_is_registered_without_a_secret(site):
    output = succeeded(site.run("clients", "add", "spa", "--auth-method", "none",
                                "--redirect-uri", "https://spa.example.org/callback"))

    assert "spa" in output and "registered" in output
    assert "secret" not in output
    assert site.stored_secret_hash("spa") is None
    assert '"token_endpoint_auth_method": "none"' in succeeded(site.run("clients", "show", "spa"))


@pytest.fixture
def app_api():
    api = UserHandlerApp()
    yield api
    api.stop()


def signed_in_claims(site, client_id: str, secret: str) -> dict:
    server = site.serve()
    app = app_at(server, client_id, secret)
    answer = app.exchange(code_for(app))
    assert answer.status_code == 200, answer.text
    return verify_id_token(server.issuer, answer.json()["id_token"], client_id)


def test_an_app_registered_with_its_user_handler_gets_the_role_its_api_gives(site, app_api):
    output = succeeded(site.run("clients", "add", "hr", "--redirect-uri", APP_REDIRECT,
                                "--user-handler-endpoint", app_api.url))

    client_secret = re.search(r"^client secret[^:]*:\s*(\S+)$", output, re.M).group(1)
    api_line = re.search(r"^user handler API secret[^:]*:\s*(\S+)$", output, re.M)
    assert api_line, output
    app_api.api_secret = api_line.group(1)  # the admin puts it in the app's config
    assert len(app_api.api_secret) >= 32 and app_api.api_secret != client_secret
    shown = succeeded(site.run("clients", "show", "hr"))
    assert app_api.url in shown and app_api.api_secret not in shown

    claims = signed_in_claims(site, "hr", client_secret)

    assert app_api.asked_about == ["demo"]
    assert claims["role"] == "editor" and claims["app_user"]["id"] == 7


def test_an_app_keeps_the_api_secret_it_already_has_when_registered_from_the_environment(site, app_api):
    app_api.api_secret = "the-secret-the-old-gateway-gave-this-app"
    env = {"HR_API_SECRET": app_api.api_secret}

    output = succeeded(site.run("clients", "add", "hr", "--redirect-uri", APP_REDIRECT,
                                "--user-handler-endpoint", app_api.url,
                                "--user-handler-secret-env", "HR_API_SECRET", env=env))

    assert app_api.api_secret not in output and "user handler API secret" not in output
    claims = signed_in_claims(site, "hr", printed_secret(output))
    assert app_api.asked_about == ["demo"] and claims["role"] == "editor"


@pytest.mark.parametrize("arguments, said", [
    (["--user-handler-endpoint", "http://hr.example.org/api/user-handler"], "https"),
    (["--user-handler-endpoint", "https://hr.example.org/api", "--user-handler-secret-env", "NOT_SET"], "NOT_SET"),
    (["--user-handler-secret-env", "HOME"], "--user-handler-endpoint"),
])
def test_a_user_handler_that_cannot_work_is_refused_and_nothing_is_registered(site, arguments, said):
    result = site.run("clients", "add", "hr", "--redirect-uri", APP_REDIRECT, *arguments)

    assert result.returncode == 1 and said in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stdout
    assert "hr" not in succeeded(site.run("clients", "list")).split()


def test_clients_list_starts_with_a_header_row(site):
    succeeded(site.run("clients", "add", "myapp", "--name", "My App", "--redirect-uri", APP_REDIRECT))

    header, *rows = succeeded(site.run("clients", "list")).splitlines()

    assert header.split("\t") == ["CLIENT_ID", "AUTH_METHOD", "SOURCE", "NAME"]
    assert rows == ["myapp\tclient_secret_basic\tdatabase\tMy App"]


def test_op_proxy_version_is_the_installed_package_version(site):
    output = succeeded(site.run("--version"))

    assert output.strip() == f"op-proxy {metadata.version('op-proxy')}"


def every_option(parser: argparse.ArgumentParser, command: str = "op-proxy"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from every_option(sub, f"{command} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield command, action


def test_every_command_and_option_says_what_it_is_for():
    undocumented = [f"{command} {'/'.join(action.option_strings) or action.dest}"
                    for command, action in every_option(build_parser()) if not action.help]

    assert not undocumented, f"options without help text: {undocumented}"


# -- keys and database -----------------------------------------------------------------------------

def test_keys_list_shows_the_signing_key_and_rotate_publishes_the_next_one(site):
    succeeded(site.run("init"))
    (first,) = [p.name.removesuffix(".jwk.json") for p in (site.directory / "keys").glob("*.jwk.json")]

    listed = succeeded(site.run("keys", "list"))
    assert re.search(rf"^{re.escape(first)}\s+signing\b", listed, re.M), listed

    rotated = succeeded(site.run("keys", "rotate"))
    kids = {p.name.removesuffix(".jwk.json") for p in (site.directory / "keys").glob("*.jwk.json")}
    (second,) = kids - {first}
    assert second in rotated and "published" in rotated

    listed = succeeded(site.run("keys", "list"))
    assert re.search(rf"^{re.escape(second)}\s+next\b", listed, re.M), listed
    assert re.search(rf"^{re.escape(first)}\s+signing\b", listed, re.M), listed


def test_db_upgrade_can_be_run_twice(site):
    first = succeeded(site.run("db", "upgrade"))
    second = succeeded(site.run("db", "upgrade"))

    assert "latest" in first and "latest" in second
    tables = table_names(site.database_url)
    assert "clients" in tables and "alembic_version" in tables


# -- configuration mistakes --------------------------------------------------------------------------

def drop_issuer(text: str) -> str:
    return re.sub(r'^issuer = .*\n', "", text, flags=re.M)


def http_issuer(text: str) -> str:
    return re.sub(r'^issuer = .*$', 'issuer = "http://op.example.org"', text, flags=re.M)


def bcrypt_password(text: str) -> str:
    return text.replace(DEMO_PASSWORD_HASH, "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW")


def mars_time(text: str) -> str:
    return text + '\n[admin]\ntimezone = "Mars/Olympus_Mons"\n'


def misspelled_section(text: str) -> str:
    return text.replace("[server]", "[sever]")


def misspelled_key(text: str) -> str:
    return text.replace("[tokens]\n", "[tokens]\nacess_token_lifetime = 300\n")


def broken_toml(text: str) -> str:
    return text + '\nnote = "a string that never ends\n'


CONFIG_MISTAKES = {
    "missing issuer": (drop_issuer, None, "server.issuer", "is required"),
    "http issuer on a real host": (http_issuer, None, "server.issuer", "plain http is only allowed on loopback"),
    "unknown client auth method": (None, [{"client_id": "app", "client_secret_hash": DEMO_PASSWORD_HASH,
                                           "token_endpoint_auth_method": "client_secret_jwt",
                                           "redirect_uris": [APP_REDIRECT]}],
                                   "clients[0].token_endpoint_auth_method", "client_secret_basic"),
    "password hash not argon2": (bcrypt_password, None, "upstreams.local.users[0].password_hash", "argon2"),
    "invalid TOML": (broken_toml, None, "-", "not valid TOML"),
    # An admin who means to shorten access tokens must not find out weeks later that nothing changed.
    "misspelled section": (misspelled_section, None, "sever", "unknown section; did you mean [server]?"),
    "misspelled key": (misspelled_key, None, "tokens.acess_token_lifetime",
                       "unknown setting; did you mean 'access_token_lifetime'?"),
    "misspelled client key": (None, [{"client_id": "app", "client_secret_hash": DEMO_PASSWORD_HASH,
                                      "redirect_uris": [APP_REDIRECT], "require_pkec": True}],
                              "clients[0].require_pkec", "did you mean 'require_pkce'?"),
    "unknown panel time zone": (mars_time, None, "admin.timezone", "unknown time zone"),
    "client token lifetime above the server's": (None, [{"client_id": "app", "client_secret_hash": DEMO_PASSWORD_HASH,
                                                        "access_token_lifetime": 86400,
                                                        "redirect_uris": [APP_REDIRECT]}],
                                                 "clients[0].access_token_lifetime", "at most 900 seconds"),
}


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES)
def test_a_config_mistake_stops_the_start_naming_file_key_and_reason(tmp_path, mistake):
    edit, clients, key, reason = CONFIG_MISTAKES[mistake]
    config = write_config(tmp_path, port=free_port(), database_url=sqlite_url(tmp_path), clients=clients)
    if edit:
        config.write_text(edit(config.read_text(encoding="utf-8")), encoding="utf-8")

    result = op_proxy(config, "serve", timeout=60)

    assert result.returncode == 2, result.stdout + result.stderr
    assert str(config) in result.stderr
    assert f": {key}: " in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "op-proxy.sqlite3").exists()


def test_a_missing_config_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.toml"

    result = op_proxy(missing, "init")

    assert result.returncode == 2
    assert str(missing) in result.stderr and "file not found" in result.stderr
    assert "Traceback" not in result.stderr


# -- environment overrides ---------------------------------------------------------------------------

def test_op_proxy_server_issuer_overrides_the_issuer_that_serve_announces(site):
    issuer = f"http://localhost:{site.port}"

    server = site.serve(env={"OP_PROXY_SERVER_ISSUER": issuer})

    metadata = httpx.get(server.url("/.well-known/openid-configuration")).json()
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == issuer + "/token"


def test_op_proxy_server_issuer_is_validated_like_the_file(site):
    result = site.run("init", env={"OP_PROXY_SERVER_ISSUER": "http://op.example.org"})

    assert result.returncode == 2
    assert "server.issuer" in result.stderr and "loopback" in result.stderr


def test_a_wrong_environment_override_is_blamed_on_the_variable_not_the_file(site):
    """The file is fine; the deployment's variable is not. The admin is sent to the variable."""
    wrong_type = site.run("init", env={"OP_PROXY_SERVER_PORT": "eighty"})
    misspelled = site.run("init", env={"OP_PROXY_TOKENS_ACESS_TOKEN_LIFETIME": "300"})

    assert wrong_type.returncode == 2 and "Traceback" not in wrong_type.stderr
    assert wrong_type.stderr.strip() == ("op-proxy: configuration error in environment variable OP_PROXY_SERVER_PORT: "
                                         "server.port: must be of type int, got 'eighty'")
    assert misspelled.returncode == 2 and str(site.config) not in misspelled.stderr
    assert "environment variable OP_PROXY_TOKENS_ACESS_TOKEN_LIFETIME: tokens.acess_token_lifetime: " \
           "unknown setting; did you mean 'access_token_lifetime'?" in misspelled.stderr


def test_variables_of_other_tools_that_share_the_prefix_do_not_stop_the_start(site):
    succeeded(site.run("init", env={"OP_PROXY_TEST_MARIADB_HOST": "127.0.0.1"}))


# -- the command line when something outside op-proxy is wrong ---------------------------------------

def one_line_that_says_what_to_do(result: subprocess.CompletedProcess) -> str:
    """The process failed with exactly one line of its own on stderr (log lines aside) and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    said = [line for line in result.stderr.splitlines() if line.startswith("op-proxy:")]
    others = [line for line in result.stderr.splitlines() if not line.startswith("op-proxy:")
              and not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ INFO ", line)]
    assert len(said) == 1 and others == [], result.stderr
    return said[0]


def test_serve_on_a_port_another_process_holds_says_so_in_one_line(site):
    import socket

    with socket.socket() as other_process:
        other_process.bind(("127.0.0.1", site.port))
        other_process.listen()
        said = one_line_that_says_what_to_do(site.run("serve"))

    assert f"cannot listen on 127.0.0.1:{site.port}" in said and "in use by another process" in said


def test_serve_bound_to_nonsense_says_what_a_bind_address_looks_like(site):
    said = one_line_that_says_what_to_do(site.run("serve", "--bind", "nonsense"))

    assert "cannot listen on nonsense" in said and "--bind 127.0.0.1:8080" in said


@pytest.mark.parametrize("command", [("serve",), ("init",), ("clients", "list"), ("db", "upgrade")])
def test_a_wrong_database_password_or_a_stopped_database_is_one_line_not_a_traceback(site, command):
    from tests.support.databases import MARIADB_HOST, MARIADB_PORT, MARIADB_USER, mariadb_or_skip

    mariadb_or_skip().close()
    wrong_password = f"mysql+aiomysql://{MARIADB_USER}:not-the-password@{MARIADB_HOST}:{MARIADB_PORT}/op_proxy"
    nobody_listens = f"mysql+aiomysql://{MARIADB_USER}:s3cret@127.0.0.1:{free_port()}/op_proxy"

    denied = one_line_that_says_what_to_do(site.run(*command, env={"OP_PROXY_DATABASE_URL": wrong_password}))
    unreachable = one_line_that_says_what_to_do(site.run(*command, env={"OP_PROXY_DATABASE_URL": nobody_listens}))

    assert "Access denied" in denied and "Check [database] url (or OP_PROXY_DATABASE_URL)" in denied
    assert "Can't connect" in unreachable and "the database server is running" in unreachable
    assert "not-the-password" not in denied and "s3cret" not in unreachable  # the URL is shown, its password not


def test_op_proxy_database_url_sends_init_to_another_database(site):
    elsewhere = site.directory / "elsewhere" / "other.sqlite3"

    output = succeeded(site.run("init", env={"OP_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{elsewhere}"}))

    assert "database ready" in output
    assert elsewhere.exists()
    assert not site.database.exists()
    demo_rows = select(func.count()).select_from(Client).where(Client.client_id == "demo")
    assert stored_values(f"sqlite+aiosqlite:///{elsewhere}", demo_rows) == [1]


# -- hash-password -------------------------------------------------------------------------------

def test_hash_password_reads_stdin_and_prints_an_argon2_hash(site):
    password = "ร้านกาแฟ correct horse"

    output = succeeded(site.run("hash-password", stdin=password + "\n"))

    (hashed,) = output.split()
    assert hashed.startswith("$argon2id$") and password not in output
    assert PasswordHasher().verify(hashed, password)


# -- the development config ----------------------------------------------------------------------

NORMALIZED_FIELDS = ("id", "username", "name", "firstName", "lastName", "email", "department", "position",
                     "campus", "officeName", "facultyId", "departmentId", "campusId", "groups")


def thai_id_is_valid(pid: str) -> bool:
    if not re.fullmatch(r"\d{13}", pid):
        return False
    total = sum(int(digit) * (13 - i) for i, digit in enumerate(pid[:12]))
    return (11 - total % 11) % 10 == int(pid[12])


def test_thai_id_checksum_helper():
    assert thai_id_is_valid("1100700000019")
    assert not thai_id_is_valid("1100700000018") and not thai_id_is_valid("110070000001")


def test_the_dev_config_holds_what_the_readme_promises():
    settings = load_settings(ROOT / "conf" / "dev.toml", environ={})
    hasher = PasswordHasher()

    assert settings.issuer == "http://127.0.0.1:8080"
    clients = {c.client_id: c for c in settings.clients}

    demo = clients["demo"]
    assert demo.client_secret_hash == secret_digest("demo-secret")  # no argon2 on each /token call
    assert demo.token_endpoint_auth_method == "client_secret_basic"
    assert set(demo.redirect_uris) == {"http://127.0.0.1:5000/callback", "http://localhost:5000/auth"}
    assert demo.post_logout_redirect_uris == ("http://127.0.0.1:5000/",)

    spa = clients["demo-spa"]
    assert spa.token_endpoint_auth_method == "none" and spa.client_secret_hash is None
    assert spa.redirect_uris == ("http://127.0.0.1:5173/callback",)
    assert spa.post_logout_redirect_uris == ("http://127.0.0.1:5173/",)

    (user,) = [u for u in settings.upstreams["local"].users if u.username == "demo"]
    assert hasher.verify(user.password_hash, "demo")
    claims = user.claims
    missing = [name for name in NORMALIZED_FIELDS if not claims.get(name)]
    assert not missing, f"normalized fields missing or empty: {missing}"
    assert re.search(r"[\u0E00-\u0E7F]", claims["name"]), claims["name"]
    assert claims["name"] == f"{claims['firstName']} {claims['lastName']}"
    assert isinstance(claims["groups"], list)
    assert thai_id_is_valid(claims["pid"]), claims["pid"]


def test_the_php_session_examples_config_matches_its_run_command():
    """examples/clients/php-session/README.md: op-proxy with this file, and
    `php -d session.save_path=/tmp/php-sessions -S 127.0.0.1:8000 router.php` beside it."""
    folder = ROOT / "examples" / "clients" / "php-session"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    settings = load_settings(folder / "op-proxy.toml", environ={})

    (client,) = [c for c in settings.clients if c.mode == "php_session"]
    assert client.legacy_default  # the unchanged guard's login.php names no client_id
    assert client.redirect_uris[0] == "http://127.0.0.1:8000/protected_page.php"
    assert client.post_logout_redirect_uris == ("http://127.0.0.1:8000/",)  # what index.php sends
    assert client.php_session["save_path"] == "/tmp/php-sessions" and not client.php_session["cookie_secure"]
    assert "php -d session.save_path=/tmp/php-sessions -S 127.0.0.1:8000 router.php" in readme
    assert "--config examples/clients/php-session/op-proxy.toml serve" in readme
    assert settings.issuer == "http://127.0.0.1:8080" and "SSO_BASE=http://127.0.0.1:8080" in readme
    (person,) = settings.upstreams["local"].users
    assert PasswordHasher().verify(person.password_hash, "demo")
    # a plain `location /sso-authen/ {` loses to a PHP server's `location ~ \.php$`
    assert "location ^~ /sso-authen/ {" in readme and "location /sso-authen/ {" not in readme
