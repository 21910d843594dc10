"""A person at a browser: follows op-proxy's (and its upstreams') redirects, fills their forms, and
stops where op-proxy hands them back to an application (whose server does not need to exist)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx


@dataclass
class Page:
    url: str
    status: int
    html: str

    def forms(self) -> list[dict]:
        found = []
        for match in re.finditer(r"<form\b([^>]*)>(.*?)</form>", self.html, re.S):
            attributes, body = match.groups()
            action = re.search(r'action="([^"]*)"', attributes)
            fields = {unescape(n): unescape(v) for n, v in re.findall(
                r'<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"', body)}
            buttons = re.findall(r'<button[^>]*name="([^"]*)"[^>]*value="([^"]*)"', body)
            found.append({"action": urljoin(self.url, unescape(action.group(1)) if action else self.url),
                          "fields": fields, "buttons": buttons, "html": body})
        return found

    @property
    def title(self) -> str:
        match = re.search(r"<h1[^>]*>(.*?)</h1>", self.html, re.S)
        return unescape(match.group(1).strip()) if match else ""

    def has_password_form(self) -> bool:
        return 'name="password"' in self.html


@dataclass
class Arrival:
    """Where op-proxy sent the person back to an application."""

    url: str
    method: str = "GET"
    form: dict | None = None

    @property
    def params(self) -> dict:
        if self.form is not None:
            return self.form
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}


class Person:
    def __init__(self, issuer: str, username: str = "demo", password: str = "demo", accept_language: str = "th",
                 upstreams: tuple[str, ...] = (), upstream_account: str | None = None):
        self.issuer = issuer
        self.username, self.password = username, password
        # Upstream identity providers this person's browser visits, and who they are there.
        self.upstreams, self.upstream_account = tuple(upstreams), upstream_account
        self.stop_at: str | None = None  # a URL prefix to stop before, as if the browser paused there
        self.http = httpx.Client(follow_redirects=False, timeout=15, headers={"Accept-Language": accept_language})
        self.pages: list[Page] = []

    def close(self):
        self.http.close()

    def on_issuer(self, url: str) -> bool:
        return url.startswith(self.issuer + "/")

    def on_known_site(self, url: str) -> bool:
        return self.on_issuer(url) or any(url.startswith(upstream + "/") for upstream in self.upstreams)

    def visit(self, url: str, *, method: str = "GET", data: dict | None = None):
        """Go to ``url`` and follow op-proxy's redirects: a Page of ours, or an Arrival elsewhere."""
        while True:
            if not self.on_known_site(url) or (self.stop_at and url.startswith(self.stop_at)):
                return Arrival(url)
            response = self.http.request(method, url, data=data)
            if response.is_redirect:
                url, method, data = urljoin(url, response.headers["location"]), "GET", None
                continue
            page = Page(str(response.url), response.status_code, response.text)
            self.pages.append(page)
            form_post = next((f for f in page.forms() if f["html"] and 'id="form-post-response"' in page.html
                              and not self.on_issuer(f["action"])), None)
            if form_post:
                return Arrival(form_post["action"], "POST", form_post["fields"])
            return page

    def consent_page(self, authorization_url: str) -> Page:
        """Open an authorization URL, type the password if asked, and stop at the consent page."""
        page = self.visit(authorization_url)
        if isinstance(page, Page) and page.has_password_form():
            page = self.submit_password(page)
        assert isinstance(page, Page) and 'name="decision"' in page.html, "no consent page was shown"
        return page

    def sign_in(self, authorization_url: str, *, consent: str | None = "allow"):
        """Open the application's authorization URL and do what a person would: type the password,
        allow access. Returns where op-proxy finally sends them."""
        result = self.visit(authorization_url)
        for _step in range(8):
            if isinstance(result, Arrival):
                return result
            if not self.on_issuer(result.url):
                result = self.at_upstream(result)
            elif result.has_password_form():
                result = self.submit_password(result)
            elif consent and 'name="decision"' in result.html:
                result = self.submit(result, decision=consent)
            else:
                return result
        raise AssertionError("sign-in did not finish")

    def at_upstream(self, page: Page):
        """At an upstream's own pages (oidc-provider's login, consent and logout forms)."""
        from tests.support.upstream import fill_upstream_page

        filled = fill_upstream_page(page.html, page.url, self.upstream_account or "")
        if filled is None:
            return page
        action, fields = filled
        return self.visit(action, method="POST", data=fields)

    def submit_password(self, page: Page, username: str | None = None, password: str | None = None):
        form = next(f for f in page.forms() if "password" in f["html"])
        return self.visit(form["action"], method="POST", data={
            "username": username or self.username, "password": password or self.password})

    def submit(self, page: Page, **fields):
        form = page.forms()[0]
        return self.visit(form["action"], method="POST", data={**form["fields"], **fields})
