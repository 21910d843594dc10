"""op-proxy behind a real nginx, as deployed: the audit log records the address nginx saw, not one a
client wrote into X-Forwarded-For, and only the proxies named in ``[server] trusted_proxies`` are
believed. Redirects are built from the issuer, never from the Host header a client chose.

The machine's loopback network is 127.0.0.0/8: the person connects from 127.0.0.3 and a stranger
from 127.0.0.2, while nginx reaches op-proxy from 127.0.0.1, the one trusted proxy."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select

from op_proxy.config import ConfigError, load_settings, parse_settings
from op_proxy.storage.models import AuditEvent
from tests.support.nginx import Nginx
from tests.support.person import Person
from tests.support.stored import stored_values

FORGED = "203.0.113.66"
PERSON_ADDRESS, STRANGER_ADDRESS = "127.0.0.3", "127.0.0.2"


def browser_at(address: str, **headers) -> httpx.Client:
    """A browser on a machine of its own (its own source address)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), follow_redirects=False, timeout=15,
                        headers={"Accept-Language": "en", **headers})


def mistyped_password(base: str, http: httpx.Client) -> None:
    """Open an application's sign-in link at ``base`` and type a wrong password (an audited failure)."""
    person = Person(base)
    person.http.close()
    person.http = http
    query = urlencode({"response_type": "code", "client_id": "demo", "redirect_uri": "http://127.0.0.1:5000/callback",
                       "scope": "openid", "state": "s"})
    page = person.visit(f"{base}/authorize?{query}")
    again = person.submit_password(page, password="not-the-password")
    assert again.has_password_form()  # asked again: the failure was recorded
    http.close()


def failed_sign_in_addresses(server) -> list[str]:
    return stored_values(server, select(AuditEvent.ip).where(AuditEvent.event == "sign_in",
                                                             AuditEvent.outcome == "failure").order_by(AuditEvent.id))


@pytest.fixture
def proxied(make_server, tmp_path):
    """op-proxy trusting the nginx in front of it (127.0.0.1), and that nginx."""
    server = make_server(env={"OP_PROXY_SERVER_TRUSTED_PROXIES": "127.0.0.1"})
    nginx = Nginx(tmp_path / "nginx", server.port).start()
    yield server, nginx
    nginx.stop()


def test_the_audit_log_records_the_address_nginx_saw_not_one_written_into_x_forwarded_for(proxied):
    server, nginx = proxied

    # Through nginx, with a forged header: nginx appends the real peer, which is what op-proxy keeps.
    mistyped_password(nginx.base, browser_at(PERSON_ADDRESS, **{"X-Forwarded-For": FORGED}))
    # Straight to op-proxy, past nginx, with the same forged header: not a trusted proxy, not believed.
    mistyped_password(server.base, browser_at(STRANGER_ADDRESS, **{"X-Forwarded-For": FORGED}))

    assert failed_sign_in_addresses(server) == [PERSON_ADDRESS, STRANGER_ADDRESS]


def test_without_trusted_proxies_x_forwarded_for_is_never_believed(make_server):
    server = make_server()  # the default: no proxy named, the socket peer is the client

    mistyped_password(server.base, browser_at(STRANGER_ADDRESS, **{"X-Forwarded-For": FORGED}))
    mistyped_password(server.base, browser_at("127.0.0.1", **{"X-Forwarded-For": FORGED}))

    assert failed_sign_in_addresses(server) == [STRANGER_ADDRESS, "127.0.0.1"]


def test_a_chain_of_trusted_proxies_is_read_from_the_right(make_server):
    """A load balancer (10.0.0.5) in front of nginx (127.0.0.1): op-proxy skips both, from the right,
    and takes the first address it does not trust, whatever the client wrote to the left of it."""
    server = make_server(env={"OP_PROXY_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/24"})

    chain = f"{FORGED}, 198.51.100.7, 10.0.0.5"  # forged by the client, the client, the load balancer
    mistyped_password(server.base, browser_at("127.0.0.1", **{"X-Forwarded-For": chain}))

    assert failed_sign_in_addresses(server) == ["198.51.100.7"]


def test_an_operator_names_the_proxies_in_the_file_or_in_the_environment(tmp_path):
    config = tmp_path / "op-proxy.toml"
    config.write_text('[server]\nissuer = "https://sso.example.ac.th"\ntrusted_proxies = ["10.0.0.7"]\n')

    assert [str(n) for n in load_settings(config, environ={}).server.trusted_proxies] == ["10.0.0.7/32"]
    from_container = load_settings(config, environ={"OP_PROXY_SERVER_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/24"})
    assert [str(n) for n in from_container.server.trusted_proxies] == ["127.0.0.1/32", "10.0.0.0/24"]


def test_a_proxy_address_that_is_not_an_address_stops_op_proxy_at_start():
    raw = {"server": {"issuer": "https://sso.example.ac.th", "trusted_proxies": ["10.0.0.0/8", "nginx"]}}
    with pytest.raises(ConfigError) as refused:
        parse_settings(raw, "op-proxy.toml")
    assert refused.value.key == "server.trusted_proxies" and "'nginx'" in refused.value.reason

    old = {"server": {"issuer": "https://sso.example.ac.th", "trust_forwarded_headers": True}}
    with pytest.raises(ConfigError) as replaced:
        parse_settings(old, "op-proxy.toml")
    assert "trusted_proxies" in replaced.value.reason


# -- the Host header ----------------------------------------------------------------------------------

@pytest.mark.parametrize("via", ["op-proxy", "nginx"])
def test_a_foreign_host_header_never_becomes_a_redirect_to_another_site(proxied, via):
    """Someone asks for /admin with ``Host: evil.example`` (to poison a shared cache, or to get a
    link to their own site into a page): the slash redirect still points at the issuer."""
    server, nginx = proxied
    base = server.base if via == "op-proxy" else nginx.base

    response = httpx.get(base + "/admin?x=1", headers={"Host": "evil.example", "X-Forwarded-Proto": "https",
                                                       "X-Forwarded-Host": "evil.example"})

    assert response.status_code == 308
    assert response.headers["Location"] == server.issuer + "/admin/?x=1"


def test_people_still_sign_in_through_nginx_whatever_host_it_passes_on(proxied):
    """nginx passes its own address as Host (127.0.0.1:<nginx port>, not the issuer's): nothing is
    refused for that, so several processes behind one nginx keep working."""
    server, nginx = proxied
    person = Person(nginx.base)
    query = urlencode({"response_type": "code", "client_id": "demo", "redirect_uri": "http://127.0.0.1:5000/callback",
                       "scope": "openid", "state": "s"})

    arrival = person.sign_in(f"{nginx.base}/authorize?{query}")

    assert arrival.url.startswith("http://127.0.0.1:5000/callback?code=") and arrival.params["iss"] == server.issuer
