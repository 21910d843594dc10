"""The PHP session mode's ``users`` table: found or created by upstream account (not e-mail), with
the default role ``subscriber``, and roles an admin changes reach the app's ``$_SESSION``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.support.person import Person
from tests.support.server import ROOT, default_clients


def session_client(save_path) -> dict:
    return {"client_id": "php-session", "name": "PHP", "mode": "php_session", "legacy_default": True,
            "redirect_uris": ["http://127.0.0.1:8082/protected_page.php"],
            "post_logout_redirect_uris": ["http://127.0.0.1:8082/"],
            "php_session": {"save_handler": "files", "save_path": str(save_path)}}


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
    database = sqlite3.connect(server.config_path.parent / "op-proxy.sqlite3")
    assert database.execute("SELECT count(*), min(role) FROM users").fetchone() == (1, "subscriber")

    changed = subprocess.run([sys.executable, "-m", "op_proxy.cli", "--config", str(server.config_path), "users",
                              "set-role", "somchai.j@example.ac.th", "editor"], cwd=ROOT, capture_output=True,
                             text=True)
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
