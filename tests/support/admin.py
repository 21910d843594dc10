"""Admins of the panel, as tests create and sign them in: what ``op-proxy admins create`` does for the
account (the command itself has its own tests), HTTP for the forms."""

from __future__ import annotations

import asyncio
import re
import threading
from html import unescape

import httpx

from tests.support.person import Person

ADMIN_PASSWORD = "correct horse battery staple"


def create_admin(server, username: str, role: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """The account ``op-proxy admins create`` makes, on the server's database (as the command, from its
    config file alone), made in this process: the command's own start-up would cost a second or two."""
    from admin.auth import create_admin as create
    from op_proxy.config import load_settings
    from op_proxy.storage import Database

    settings = load_settings(server.config_path, environ={})

    async def on_the_database():
        db = Database(settings.database_url)
        try:
            await create(db, username, password, role)
        finally:
            await db.close()

    outcome: list[BaseException] = []

    def in_a_loop_of_its_own():  # a test may already run inside an event loop
        try:
            asyncio.run(on_the_database())
        except BaseException as exc:  # noqa: BLE001 - raised in the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=in_a_loop_of_its_own)
    worker.start()
    worker.join(120)
    if outcome:
        raise outcome[0]


def csrf_token(html: str) -> str:
    return unescape(re.search(r'name="csrf_token" value="([^"]+)"', html).group(1))


def login_form(http: httpx.Client, base: str = "") -> str:
    """Open the panel's sign-in page; the CSRF token its form carries."""
    page = http.get(f"{base}/admin/login")
    assert page.status_code == 200 and http.cookies.get("op_admin_login")
    return csrf_token(page.text)


def try_password(http: httpx.Client, username: str, password: str, base: str = "") -> httpx.Response:
    """Sign in at the panel's form (``base`` for a client without a base URL)."""
    return http.post(f"{base}/admin/login", data={"csrf_token": login_form(http, base), "username": username,
                                                  "password": password})


def signed_in_admin(server, username: str = "boss", role: str = "admin", language: str = "en") -> Person:
    """An admin (or viewer) at a browser, created with the CLI and signed in to the panel with a password."""
    create_admin(server, username, role)
    admin = Person(server.issuer, accept_language=language)
    answer = try_password(admin.http, username, ADMIN_PASSWORD, base=server.base)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/", answer.text
    return admin


def admin_browser(server, username: str, password: str = ADMIN_PASSWORD) -> httpx.Client:
    """A bare HTTP client signed in to the panel as an existing admin."""
    http = httpx.Client(base_url=server.base, headers={"Accept-Language": "en"}, timeout=15)
    answer = try_password(http, username, password)
    assert answer.status_code == 303 and answer.headers["location"] == "/admin/", answer.text
    return http


def hidden_fields(html: str, action: str) -> dict:
    """The hidden inputs of the page's form that posts to ``action`` (the CSRF token, a version ...)."""
    form = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    body = form.group(1) if form else ""
    return {unescape(name): unescape(value) for name, value in
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body)}


def post_form(person: Person, page_url: str, action: str, **fields) -> httpx.Response:
    """Submit one of the panel's forms as a browser would: its hidden fields (the CSRF token first of
    all) and ``fields``."""
    page = person.http.get(page_url)
    assert page.status_code == 200, page.text
    data = {"csrf_token": csrf_token(page.text), **hidden_fields(page.text, action), **fields}
    return person.http.post(page_url.split("/admin/")[0] + action, data=data)
