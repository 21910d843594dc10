"""A university runs op-proxy as examples/deploy/nginx.conf says: real nginx ends TLS with a
certificate of the university's CA and balances over two op-proxy processes on one MariaDB, and
people and apps only ever see https://.

Every client here checks nginx's certificate against the test's own throw-away CA. The person's
browser connects from 127.0.0.2 and the app's back end from 127.0.0.3 (both loopback), while
nginx reaches op-proxy from 127.0.0.1: so the audit log shows whose address op-proxy believed.
"""

from __future__ import annotations

import re
import secrets
import ssl

import httpx
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from authlib.jose import JsonWebKey, jwt
from sqlalchemy import select

from op_proxy.storage.models import AuditEvent
from tests.support.person import Arrival, Person
from tests.support.server import DEMO_SECRET_HASH, free_port
from tests.support.stored import stored_values
from tests.support.tls_proxy import Nginx, ThrowAwayCA, render_example

BROWSER_ADDRESS = "127.0.0.2"
APP_ADDRESS = "127.0.0.3"
NGINX_ADDRESS = "127.0.0.1"  # where nginx's connections to op-proxy come from
FORGED_ADDRESS = "203.0.113.66"  # what a browser claims in its own X-Forwarded-For
APP_REDIRECT = "https://app.example.ac.th/callback"


def trust_the_proxy() -> dict:
    """The op-proxy setting that believes nginx's X-Forwarded-For, and nobody else's."""
    return {"OP_PROXY_SERVER_TRUSTED_PROXIES": NGINX_ADDRESS}


class Deployment:
    """nginx from examples/deploy/nginx.conf in front of the op-proxy processes of ``make_server``."""

    def __init__(self, make_server, tmp_path, *, processes: int, trusted: bool):
        self.ca = ThrowAwayCA()
        self.port, self.app_port, self.http_port = free_port(), free_port(), free_port()
        self.issuer = f"https://127.0.0.1:{self.port}"
        self.legacy_key = secrets.token_urlsafe(32)
        legacy_app = {"client_id": "php-app", "name": "แอป PHP เดิม", "mode": "query_token",
                      "legacy_key_env": "PHP_APP_JWT_KEY",
                      "redirect_uris": [f"https://127.0.0.1:{self.app_port}/sso_callback.php"]}
        app = {"client_id": "portal", "name": "University portal", "client_secret_hash": DEMO_SECRET_HASH,
               "redirect_uris": [APP_REDIRECT]}
        env = {"OP_PROXY_SERVER_ISSUER": self.issuer, "OP_PROXY_SERVER_SECURE_COOKIES": "true",
               "PHP_APP_JWT_KEY": self.legacy_key, **(trust_the_proxy() if trusted else {})}
        self.processes = [make_server(clients=[app, legacy_app], env=env) for _ in range(processes)]
        self.nginx = Nginx(tmp_path / "nginx")
        certificate, key = self.ca.issue_server_certificate(self.nginx.directory)
        upstreams = [(f"server 10.0.0.1{n}:8080", f"server 127.0.0.1:{p.port}") for n, p in
                     zip((1, 2), self.processes, strict=False)]
        upstreams += [(f"server 10.0.0.1{n}:8080 max_fails=3 fail_timeout=10s;", "")
                      for n in range(len(self.processes) + 1, 3)]
        site = render_example([
            *upstreams,
            ("listen 80;", f"listen 127.0.0.1:{self.http_port};"), ("listen [::]:80;", ""),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;"),
            ("listen [::]:443 ssl http2;", ""),
            ("/etc/ssl/certs/sso.example.ac.th.fullchain.pem", str(certificate)),
            ("/etc/ssl/private/sso.example.ac.th.key", str(key)),
            ("/var/log/nginx/op-proxy.access.log", str(self.nginx.access_log)),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.app_port} ssl http2;"),
            ("listen [::]:443 ssl http2;", ""),
            ("/etc/ssl/certs/app.example.ac.th.fullchain.pem", str(certificate)),
            ("/etc/ssl/private/app.example.ac.th.key", str(key)),
            ("return 302 https://sso.example.ac.th$request_uri;", f"return 302 {self.issuer}$request_uri;"),
        ])
        try:
            self.nginx.start(site, [self.port, self.app_port, self.http_port])
        except BaseException:
            self.nginx.stop()
            raise
        self.cookies: list[str] = []

    def browser(self) -> Person:
        """A person whose browser trusts only the throw-away CA and keeps every Set-Cookie it gets."""
        person = Person(self.issuer)
        person.http.close()
        person.http = httpx.Client(
            follow_redirects=False, timeout=15, headers={"Accept-Language": "th", "X-Forwarded-For": FORGED_ADDRESS},
            transport=httpx.HTTPTransport(verify=self.ca.client_context(), local_address=BROWSER_ADDRESS),
            event_hooks={"response": [lambda r: self.cookies.extend(r.headers.get_list("set-cookie"))]})
        return person

    def app(self) -> OAuth2Client:
        """The portal's back end (Authlib), trusting only the throw-away CA."""
        return OAuth2Client(client_id="portal", client_secret="demo-secret", scope="openid profile email",
                            redirect_uri=APP_REDIRECT, code_challenge_method="S256",
                            transport=httpx.HTTPTransport(verify=self.ca.client_context(), local_address=APP_ADDRESS))

    def audit_addresses(self, event: str) -> set[str]:
        return set(stored_values(self.processes[0], select(AuditEvent.ip).where(AuditEvent.event == event)))

    def stop(self):
        self.nginx.stop()


@pytest.fixture
def deployment(request, make_server, tmp_path, database_url):
    processes, trusted = request.param
    deployed = Deployment(make_server, tmp_path, processes=processes, trusted=trusted)
    yield deployed
    deployed.stop()


def sign_in_through_nginx(deployment: Deployment) -> dict:
    """authorize → password → code → token → userinfo, all over https through nginx."""
    with deployment.app() as app:
        discovery_url = deployment.issuer + "/.well-known/openid-configuration"
        metadata = app.request("GET", discovery_url, withhold_token=True).json()
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        url, state = app.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier,
                                                  nonce=nonce)
        person = deployment.browser()
        try:
            arrival = person.sign_in(url)
        finally:
            person.close()
        assert isinstance(arrival, Arrival) and arrival.url.startswith(APP_REDIRECT), arrival
        assert arrival.params["state"] == state and arrival.params["iss"] == deployment.issuer
        tokens = app.fetch_token(metadata["token_endpoint"], authorization_response=arrival.url,
                                 code_verifier=verifier)
        keys = JsonWebKey.import_key_set(app.request("GET", metadata["jwks_uri"], withhold_token=True).json())
        id_token = jwt.decode(tokens["id_token"], keys)
        id_token.validate(leeway=5)
        userinfo = app.get(metadata["userinfo_endpoint"])
        assert userinfo.status_code == 200, userinfo.text
    assert metadata["issuer"] == deployment.issuer
    assert all(metadata[k].startswith(deployment.issuer + "/") for k in
               ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"))
    assert id_token["iss"] == deployment.issuer and id_token["aud"] == "portal" and id_token["nonce"] == nonce
    return {"id_token": dict(id_token), "userinfo": userinfo.json(), "access_token": tokens["access_token"]}


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
@pytest.mark.parametrize("deployment", [(2, True)], indirect=True)
def test_a_person_signs_in_over_https_through_nginx_balancing_two_processes(deployment):
    signed_in = sign_in_through_nginx(deployment)

    assert signed_in["userinfo"]["sub"] == signed_in["id_token"]["sub"]
    assert signed_in["userinfo"]["name"] == "สมชาย ใจดี"
    # Both processes served parts of it (nginx's round robin), and one sign-in spanned them.
    log = deployment.nginx.access_log.read_text()
    served_by = set(re.findall(r"upstream=127\.0\.0\.1:(\d+)", log))
    assert served_by == {str(p.port) for p in deployment.processes}, log
    # The access log never holds a query string: no code, state or token in it.
    assert "?" not in log and "code=" not in log, log


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
@pytest.mark.parametrize("deployment", [(2, True)], indirect=True)
def test_cookies_are_secure_and_browsers_are_told_to_stay_on_https(deployment):
    sign_in_through_nginx(deployment)

    assert deployment.cookies, "op-proxy set no cookie during a sign-in"
    for cookie in deployment.cookies:
        attributes = [a.strip().lower() for a in cookie.split(";")[1:]]
        assert "secure" in attributes and "httponly" in attributes, cookie
    with httpx.Client(verify=deployment.ca.client_context()) as browser:
        page = browser.get(deployment.issuer + "/")
        assert page.headers.get_list("strict-transport-security") == ["max-age=31536000"]
        # Plain http only redirects to https, to the same path.
        plain = browser.get(f"http://127.0.0.1:{deployment.http_port}/authorize?client_id=portal")
        assert plain.status_code == 301
        assert plain.headers["location"] == "https://127.0.0.1/authorize?client_id=portal"
        # /metrics counts one process: scraped at each process, never through the public name.
        assert browser.get(deployment.issuer + "/metrics").status_code == 403
    # The clients here really check the certificate: without the university's CA, no connection.
    with pytest.raises(httpx.ConnectError) as refused:
        httpx.get(deployment.issuer + "/.well-known/openid-configuration", verify=ssl.create_default_context())
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
@pytest.mark.parametrize("deployment", [(2, True)], indirect=True)
def test_the_audit_log_keeps_the_address_nginx_saw_when_the_proxy_is_trusted(deployment):
    signed_in = sign_in_through_nginx(deployment)

    # The browser's own X-Forwarded-For claim is replaced by nginx, never believed.
    assert deployment.audit_addresses("sign_in") == {BROWSER_ADDRESS}
    assert deployment.audit_addresses("authorization_code_issued") == {BROWSER_ADDRESS}
    assert deployment.audit_addresses("tokens_issued") == {APP_ADDRESS}

    # Whoever reaches a process around nginx is not a trusted proxy: its own address is recorded,
    # whatever X-Forwarded-For it sends.
    with httpx.Client(transport=httpx.HTTPTransport(local_address=APP_ADDRESS)) as around_nginx:
        revoked = around_nginx.post(deployment.processes[0].url("/revoke"), auth=("portal", "demo-secret"),
                                    data={"token": signed_in["access_token"]},
                                    headers={"X-Forwarded-For": FORGED_ADDRESS})
    assert revoked.status_code == 200
    assert deployment.audit_addresses("token_revoked") == {APP_ADDRESS}


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
@pytest.mark.parametrize("deployment", [(1, False)], indirect=True)
def test_an_untrusted_proxy_is_what_the_audit_log_names(deployment):
    """Without the trust setting, X-Forwarded-For means nothing: the address is nginx's own."""
    sign_in_through_nginx(deployment)

    assert deployment.audit_addresses("sign_in") == {NGINX_ADDRESS}
    assert deployment.audit_addresses("tokens_issued") == {NGINX_ADDRESS}


@pytest.mark.parametrize("database_url", ["mariadb"], indirect=True)
@pytest.mark.parametrize("deployment", [(1, True)], indirect=True)
def test_an_old_php_app_sends_people_through_its_own_sso_authen_path_to_op_proxy(deployment):
    callback = f"https://127.0.0.1:{deployment.app_port}/sso_callback.php"
    guard = f"https://127.0.0.1:{deployment.app_port}/sso-authen/public/login.php?client_id=php-app"
    person = deployment.browser()
    try:
        first = person.http.get(guard)
        assert first.status_code == 302
        assert first.headers["location"] == f"{deployment.issuer}/sso-authen/public/login.php?client_id=php-app"
        arrival = person.sign_in(first.headers["location"])
    finally:
        person.close()
    assert isinstance(arrival, Arrival) and arrival.url.startswith(callback + "?token="), arrival
    claims = jwt.decode(arrival.params["token"], deployment.legacy_key.encode())
    claims.validate(leeway=5)
    assert claims["iss"] == deployment.issuer and claims["aud"] == "php-app"
    assert claims["data"]["username"] == "demo"
