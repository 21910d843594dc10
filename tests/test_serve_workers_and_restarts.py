"""How ``op-proxy serve`` runs in production: several workers on one machine, restarts that lose no
request, a start-up that a silent database cannot hang, and connections a slow client cannot keep."""

from __future__ import annotations

import base64
import email.utils
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from argon2 import PasswordHasher
from prometheus_client.parser import text_string_to_metric_families

from tests.support.person import Arrival, Person
from tests.support.server import ROOT, OpProxyServer, default_clients, free_port, write_config

DISCOVERY = "/.well-known/openid-configuration"
# These stories are about the server, not about hashing: the applications' secret is checked cheaply.
CHEAP_SECRET_HASH = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("demo-secret")


def start_server(servers, tmp_path, database_url, *serve_args, env=None) -> OpProxyServer:
    """An op-proxy process, stopped after the test (also when it fails to become ready)."""
    port = free_port()
    clients = [{**client, "client_secret_hash": CHEAP_SECRET_HASH} if "client_secret_hash" in client else client
               for client in default_clients()]
    config = write_config(tmp_path, port=port, database_url=database_url, clients=clients)
    server = OpProxyServer(config, port, env=env, serve_args=serve_args)
    servers.append(server)
    return server.start()


@pytest.fixture
def servers():
    started: list[OpProxyServer] = []
    yield started
    for server in started:
        for pid in worker_pids(server):
            os.kill(pid, signal.SIGCONT)  # a worker the test paused must be able to stop
        server.stop()


def worker_pids(server: OpProxyServer) -> list[int]:
    """The worker processes of ``serve --workers N`` (children of the serve process)."""
    if server.process is None or server.process.poll() is not None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == server.process.pid and b"multiprocessing-fork" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def discovery_requests_counted(server: OpProxyServer) -> float:
    text = httpx.get(server.url("/metrics"), timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "op_proxy_http_request_duration_seconds_count"
                    and sample.labels == {"method": "GET", "route": DISCOVERY, "status": "200"}):
                return sample.value
    return 0


@pytest.mark.parametrize("database_url", ["sqlite", "mariadb"], indirect=True)
def test_two_workers_both_answer_and_metrics_add_up_across_them(tmp_path, database_url, servers):
    # An operator runs one worker per core; Prometheus scrapes whichever worker takes the connection.
    server = start_server(servers, tmp_path, database_url, "--workers", "2")
    deadline = time.monotonic() + 60
    while len(worker_pids(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    first, second = worker_pids(server)
    before = discovery_requests_counted(server)

    # With one worker paused, the other alone takes every new connection: each answers on its own.
    answered = {}
    for paused, count in ((first, 3), (second, 4)):
        os.kill(paused, signal.SIGSTOP)
        try:
            with httpx.Client(timeout=60) as browser:
                answered[paused] = [browser.get(server.url(DISCOVERY)).status_code for _ in range(count)]
                # Scraped from the worker that did not count the previous round: it still adds it up.
                assert discovery_requests_counted(server) == before + (3 if paused == first else 7)
        finally:
            os.kill(paused, signal.SIGCONT)
    assert answered == {first: [200] * 3, second: [200] * 4}

    for _ in range(4):  # whichever worker answers the scrape, the totals are the same
        assert discovery_requests_counted(server) == before + 7


def connections_held_by(pid: int, port: int) -> int:
    """How many established connections to ``port`` the process ``pid`` has accepted."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # 01: ESTABLISHED
            inodes.add(fields[9])
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        held += target.startswith("socket:[") and target[8:-1] in inodes
    return held


def test_a_burst_of_keep_alive_connections_is_shared_by_the_workers(tmp_path, database_url, servers):
    # A load balancer opens its pool of keep-alive connections at once: every worker must get some,
    # or one core serves everything while the other idles for as long as the connections live.
    server = start_server(servers, tmp_path, database_url, "--workers", "2")
    deadline = time.monotonic() + 60
    while len(worker_pids(server)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    for paused in worker_pids(server):  # both workers have started: each answers while the other sleeps
        os.kill(paused, signal.SIGSTOP)
        try:
            assert httpx.get(server.url(DISCOVERY), timeout=60).status_code == 200
        finally:
            os.kill(paused, signal.SIGCONT)
    pool = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(32)]
    try:
        for connection in pool:
            connection.sendall(f"GET {DISCOVERY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert all(connection.recv(12) == b"HTTP/1.1 200" for connection in pool)
        held = {pid: connections_held_by(pid, server.port) for pid in worker_pids(server)}
        assert sum(held.values()) == 32
        assert all(count > 0 for count in held.values()), f"one worker took every connection: {held}"
    finally:
        for connection in pool:
            connection.close()


# -- restarts ------------------------------------------------------------------------------------

def codes_for(server: OpProxyServer, count: int) -> list[str]:
    """A person signed in once; ``count`` applications' authorization codes (the SSO session answers)."""
    person = Person(server.issuer)
    codes = []
    try:
        for number in range(count):
            query = urlencode({"client_id": "demo", "redirect_uri": "http://127.0.0.1:5000/callback",
                               "response_type": "code", "scope": "openid profile", "state": f"s{number}",
                               "nonce": f"n{number}"})
            arrival = person.sign_in(server.url(f"/authorize?{query}"))
            assert isinstance(arrival, Arrival), "the sign-in did not end at the application"
            codes.append(arrival.params["code"])
    finally:
        person.close()
    return codes


def server_has_read_everything(port: int, connections: int) -> bool:
    """True once the server has accepted ``connections`` connections on ``port`` and read all that
    was sent on them (Linux: /proc/net/tcp receive queues, and the listener's accept queue)."""
    established = listening_backlog = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        state, receive_queue = fields[3], int(fields[4].split(":")[1], 16)
        if local_port != port:
            continue
        if state == "0A":
            listening_backlog += receive_queue
        elif state == "01":
            if receive_queue:
                return False
            established += 1
    return listening_backlog == 0 and established >= connections


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_fifty_token_requests_are_in_flight_answers_every_one(tmp_path, database_url, servers,
                                                                            workers):
    # A rolling restart: the operator's service manager sends SIGTERM while 50 applications are
    # exchanging codes, their requests still arriving over slow links (half the form is sent, the
    # rest a few seconds later: longer than the 3 s hypercorn gives in-flight requests by default).
    server = start_server(servers, tmp_path, database_url, "--workers", workers)
    codes = codes_for(server, 50)
    basic = base64.b64encode(b"demo:demo-secret").decode()
    connections = []
    for code in codes:
        body = urlencode({"grant_type": "authorization_code", "code": code,
                          "redirect_uri": "http://127.0.0.1:5000/callback"}).encode()
        head = (f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Basic {basic}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=60)
        connection.sendall(head + body[:20])
        connections.append((connection, body[20:]))
    deadline = time.monotonic() + 60
    while not server_has_read_everything(server.port, 50) and time.monotonic() < deadline:
        time.sleep(0.05)

    server.process.send_signal(signal.SIGTERM)
    time.sleep(4)  # the rest of each request is still on its way
    for connection, rest in connections:
        connection.sendall(rest)

    answers = []
    for connection, _rest in connections:
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
        connection.close()
        head, _, body = received.partition(b"\r\n\r\n")
        answers.append((head.split(b" ", 2)[1] if head else b"(nothing)", body))
    assert [status for status, _body in answers] == [b"200"] * 50
    assert all("access_token" in json.loads(body) for _status, body in answers)
    assert server.process.wait(60) == 0  # and then it stops, by itself


# -- start-up against a database that does not answer -------------------------------------------

@pytest.fixture
def silent_database():
    """A "MariaDB" that accepts connections and never says a word (a hung server, a firewall that
    swallows packets after the handshake): how many connections it has taken."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener
    listener.close()


def start_against(silent_database, tmp_path, env=None) -> subprocess.Popen:
    url = f"mysql+aiomysql://op:op@127.0.0.1:{silent_database.getsockname()[1]}/op_proxy?charset=utf8mb4"
    config = write_config(tmp_path, port=free_port(), database_url=url)
    return subprocess.Popen([sys.executable, "-m", "op_proxy.cli", "serve"], cwd=ROOT,
                            env={**os.environ, "OP_PROXY_CONFIG": str(config), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_start_up_waiting_on_a_silent_database_stops_when_asked(silent_database, tmp_path, stop):
    process = start_against(silent_database, tmp_path)
    try:
        silent_database.settimeout(60)
        held, _ = silent_database.accept()  # op-proxy is now waiting for the database's greeting
        process.send_signal(stop)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    held.close()
    assert process.returncode == 0
    assert err.strip().splitlines()[-1] == f"op-proxy: stopped ({stop.name}) during start-up; nothing was served"
    assert "Traceback" not in err


def test_a_start_up_waiting_on_a_silent_database_gives_up_with_one_clear_line(silent_database, tmp_path):
    process = start_against(silent_database, tmp_path, env={"OP_PROXY_SERVER_STARTUP_TIMEOUT": "2"})
    try:
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert err.strip().splitlines()[-1] == (
        "op-proxy: the database (mysql+aiomysql) did not answer within 2 s (server.startup_timeout); "
        "is it running and reachable?")
    assert "Traceback" not in err
    assert "op:op" not in out + err  # the URL's credentials stay out of it


# -- a client that stops sending --------------------------------------------------------------------

def test_a_request_body_that_stops_arriving_gets_a_408_and_its_connection_is_closed(tmp_path, database_url,
                                                                                    servers):
    server = start_server(servers, tmp_path, database_url, env={"OP_PROXY_SERVER_READ_TIMEOUT": "1"})
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    slow.sendall((f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                  "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
                  "grant_type=authorization_code&co").encode())  # ... and nothing more, ever
    assert httpx.get(server.url("/healthz")).status_code == 200  # meanwhile everyone else is served

    received = b""
    while chunk := slow.recv(65536):  # the server closes the connection: recv returns b""
        received += chunk
    slow.close()
    assert received.startswith(b"HTTP/1.1 408 ")
    assert json.loads(received.partition(b"\r\n\r\n")[2])["error"] == "invalid_request"

    # Headers that stop half-way are dropped too (after hypercorn's keep-alive timeout), unanswered.
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as half:
        half.sendall(f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Ty".encode())
        assert half.recv(65536) == b""


def test_a_slow_upload_within_the_read_timeout_is_served(tmp_path, database_url, servers):
    # A pause shorter than server.read_timeout (default 10 s) is an ordinary slow network.
    server = start_server(servers, tmp_path, database_url)
    body = b"token=not-a-token"
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as slow:
        slow.sendall((f"POST /introspect HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                      f"Authorization: Basic {base64.b64encode(b'demo:demo-secret').decode()}\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body[:6])
        time.sleep(2)
        slow.sendall(body[6:])
        received = b""
        while chunk := slow.recv(65536):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert json.loads(received.partition(b"\r\n\r\n")[2]) == {"active": False}


def test_every_response_is_dated_with_the_second_it_was_sent(tmp_path, database_url, servers):
    # RFC 9110 §6.6.1: an origin server with a clock sends Date. op-proxy makes the header once a
    # second (serving.ServingConfig): a cache that never moved on would date every answer alike.
    server = start_server(servers, tmp_path, database_url)
    dates = []
    with httpx.Client() as client:
        for _ in range(3):
            before = time.time()
            response = client.get(server.url(DISCOVERY))
            after = time.time()
            sent = email.utils.parsedate_to_datetime(response.headers["date"]).timestamp()
            assert int(before) <= sent <= after
            dates.append(response.headers["date"])
            time.sleep(1.1)
    assert len(set(dates)) == 3
