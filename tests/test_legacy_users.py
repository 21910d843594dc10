"""The PHP session mode's ``users`` table: found or created by upstream account (not e-mail), with
the default role ``subscriber``, and roles an admin changes reach the app's ``$_SESSION``: each
app's own, since each old app authorised its own people."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import func, select

from op_proxy.storage.models import User
from tests.support.person import Page, Person
from tests.support.server import ROOT, default_clients, free_port, write_config
from tests.support.stored import stored


def session_client(save_path, client_id: str = "php-session", port: int = 8082, default: bool = True) -> dict:
    return {"client_id": client_id, "name": "PHP", "mode": "php_session", "legacy_default": default,
            "redirect_uris": [f"http://127.0.0.1:{port}/protected_page.php"],
            "post_logout_redirect_uris": [f"http://127.0.0.1:{port}/"],
            "php_session": {"save_handler": "files", "save_path": str(save_path)}}


def op_proxy_command(server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), *args],
                          cwd=ROOT, capture_output=True, text=True)


def role_in(server, client_id: str, save_path) -> str:
    """Sign in to the app afresh; the role its new PHP session holds."""
    person = Person(server.issuer)
    person.sign_in(server.url(f"/public/login.php?client_id={client_id}"))
    data = session_data(save_path, person)
    start = data.index('s:4:"role";s:') + len('s:4:"role";s:')
    length, rest = data[start:].split(":", 1)
    return rest[1:1 + int(length)]


def session_data(save_path, person: Person) -> str:
    session_id = person.http.cookies.get("PHPSESSID")
    return (save_path / f"sess_{session_id}").read_text(encoding="utf-8")


def test_a_person_is_created_once_as_subscriber_and_an_admins_role_change_reaches_the_app(make_server, tmp_path):
    sessions = tmp_path / "php-sessions"
    sessions.mkdir()
    server = make_server(clients=default_clients() + [session_client(sessions)])

    first = Person(server.issuer)
    arrival = first.sign_in(server.url("/sso-authen/public/login.php"))
    assert arrival.url == "http://127.0.0.1:8082/protected_page.php"
    data = session_data(sessions, first)
    assert data.startswith("user_is_logged_in|b:1;user_info|a:")
    assert 's:4:"role";s:10:"subscriber";' in data and 's:4:"name";s:28:"สมชาย ใจดี";' in data

    again = Person(server.issuer)
    again.sign_in(server.url("/public/login.php?client_id=php-session"))
    assert stored(server, select(func.count(), func.min(User.role))) == [(1, "subscriber")]

    changed = op_proxy_command(server, "users", "set-role", "somchai.j@example.ac.th", "editor", "--client",
                               "php-session")
    assert changed.returncode == 0, changed.stderr
    listed = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), "users",
                             "list"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "editor" in listed and "สมชาย ใจดี" in listed

    third = Person(server.issuer)
    third.sign_in(server.url("/public/login.php?client_id=php-session"))
    assert 's:4:"role";s:6:"editor";' in session_data(sessions, third)


def test_legacy_and_oidc_front_doors_do_not_mix(make_server, tmp_path):
    server = make_server(clients=default_clients() + [session_client(tmp_path)])
    person = Person(server.issuer)
    oidc_for_legacy = person.http.get(server.url(
        "/authorize?client_id=php-session&redirect_uri=http://127.0.0.1:8082/protected_page.php"
        "&response_type=code&scope=openid"))
    assert oidc_for_legacy.status_code == 400 and "location" not in oidc_for_legacy.headers
    legacy_for_oidc = person.http.get(server.url(
        "/public/login.php?client_id=demo&redirect_uri=http://127.0.0.1:5000/callback"))
    assert legacy_for_oidc.status_code == 400 and "location" not in legacy_for_oidc.headers


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_an_editor_of_the_library_app_is_no_editor_of_the_finance_app(make_server, tmp_path):
    library, finance = tmp_path / "library-sessions", tmp_path / "finance-sessions"
    library.mkdir()
    finance.mkdir()
    server = make_server(clients=default_clients() + [session_client(library, "library", 8083),
                                                      session_client(finance, "finance", 8084, default=False)])
    assert role_in(server, "library", library) == "subscriber"  # the person is created at first sign-in

    changed = op_proxy_command(server, "users", "set-role", "somchai.j@example.ac.th", "editor", "--client", "library")

    assert changed.returncode == 0, changed.stderr
    assert role_in(server, "library", library) == "editor"
    assert role_in(server, "finance", finance) == "subscriber"
    listed = op_proxy_command(server, "users", "list").stdout
    assert "library=editor" in listed and "finance=" not in listed

    # The person's default reaches every app with no role of its own for them, and only those.
    assert op_proxy_command(server, "users", "set-role", "somchai.j@example.ac.th", "admin", "--default"
                            ).returncode == 0
    assert role_in(server, "finance", finance) == "admin"
    assert role_in(server, "library", library) == "editor"


def test_set_role_refuses_a_role_no_app_knows_and_a_person_or_app_it_cannot_give_one(make_server, tmp_path):
    server = make_server(clients=default_clients() + [session_client(tmp_path)])
    assert role_in(server, "php-session", tmp_path) == "subscriber"

    refusals = {
        "a misspelt role": (["somchai.j@example.ac.th", "editer", "--client", "php-session"], 1,
                            "unknown role 'editer': one of subscriber, editor, admin"),
        "no app named": (["somchai.j@example.ac.th", "editor"], 2, "--client"),
        "an OpenID Connect app": (["somchai.j@example.ac.th", "editor", "--client", "demo"], 1,
                                  "client demo is not a php_session app"),
        "an app nobody registered": (["somchai.j@example.ac.th", "editor", "--client", "nowhere"], 1,
                                     "no client nowhere"),
        "nobody by that address": (["nobody@example.ac.th", "editor", "--client", "php-session"], 1,
                                   "no user nobody@example.ac.th"),
    }
    for story, (args, code, says) in refusals.items():
        refused = op_proxy_command(server, "users", "set-role", *args)
        assert (refused.returncode, says in refused.stderr) == (code, True), (story, refused.stderr)
        assert "Traceback" not in refused.stderr, story

    assert role_in(server, "php-session", tmp_path) == "subscriber"  # nothing changed


def test_a_deployment_lists_the_roles_its_apps_use(make_server, tmp_path):
    server = make_server(clients=default_clients() + [session_client(tmp_path)],
                         extra='[legacy]\nroles = ["subscriber", "librarian"]\n')
    role_in(server, "php-session", tmp_path)

    assert op_proxy_command(server, "users", "set-role", "1", "librarian", "--client", "php-session").returncode == 0
    assert op_proxy_command(server, "users", "set-role", "1", "editor", "--client", "php-session").returncode == 1
    assert role_in(server, "php-session", tmp_path) == "librarian"


def test_a_php_session_group_the_machine_does_not_have_stops_op_proxy_with_the_key_to_fix(tmp_path, database_url):
    client = session_client(tmp_path)
    client["php_session"].update(file_group="no-such-php-group", file_mode="0660")
    config = write_config(tmp_path, port=free_port(), database_url=database_url,
                          clients=default_clients() + [client])

    refused = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(config), "db", "upgrade"],
                             cwd=ROOT, capture_output=True, text=True)

    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "php_session: file_group: there is no group 'no-such-php-group' on this machine" in refused.stderr


def test_a_session_directory_removed_since_start_gives_a_page_that_says_whom_to_ask(make_server, tmp_path):
    sessions = tmp_path / "php-sessions"
    sessions.mkdir()
    server = make_server(clients=default_clients() + [session_client(sessions)])
    sessions.rmdir()  # a disk unmounted, a directory cleaned up by someone else

    page = Person(server.issuer).sign_in(server.url("/public/login.php?client_id=php-session"))

    assert isinstance(page, Page), f"sent to {page.url}"
    assert page.status == 500 and "op-proxy ยังไม่ได้ตั้งค่าสำหรับแอปพลิเคชันนี้ กรุณาติดต่อผู้ดูแลระบบ" in page.html
    log = server.log()
    assert "Traceback" not in log and "cannot write a session in" in log


def test_an_app_deleted_and_registered_again_gives_nobody_the_roles_the_old_one_gave(tmp_path):
    # An admin deletes the library app, and someone later registers a new app under the same
    # client_id: the librarians of the old app must not be editors of the new one.
    import asyncio

    from sqlalchemy import select

    from op_proxy.clients.registry import create_client, remove_client
    from op_proxy.storage import Database
    from op_proxy.storage.database import upgrade_schema
    from op_proxy.storage.models import UserAppRole
    from tests.support.databases import sqlite_url

    url = sqlite_url(tmp_path)
    upgrade_schema(url)
    library = {**session_client(tmp_path, "library"), "name": "Library"}
    library.pop("legacy_default")

    async def story():
        db = Database(url)
        try:
            await create_client(db, dict(library))
            async with db.transaction() as session:
                session.add(UserAppRole(user_id=1, client_id="library", role="editor", updated_at=0))
            await remove_client(db, "library")
            await create_client(db, dict(library))
            async with db.session() as session:
                return list((await session.scalars(select(UserAppRole.role))).all())
        finally:
            await db.close()

    assert asyncio.run(story()) == []
