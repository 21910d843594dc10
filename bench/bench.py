"""`make bench`: op-proxy's own benchmark, beside Node's oidc-provider and a Quart hello-world.

Each server runs pinned to core 0 (``taskset -c 0``), the load generator to core 1: wrk (Debian
package ``wrk``) with Lua scripts for the POSTs and the single-use tokens, and for complete sign-ins a
small asyncio HTTP/1.1 client of ours (its own CPU use is printed, to show it is not the bottleneck).
wrk runs as a batch task (``chrt --batch``, SCHED_BATCH): on its own core that changes nothing, and
where it must share one (``serve --workers 2`` uses both) its wake-ups no longer cut into a worker's
request half-way; it still gets its turn, and its CPU is printed. Everything is on loopback, every loop
is bounded, and it stops by itself.

    .venv/bin/python bench/bench.py [--rounds 5] [--duration 5] [--quick] [--check]

- op-proxy: ``op-proxy serve`` with conf/dev.toml as shipped (the demo client and its secret), a
  bench database and keys in a temporary directory, and one more person, "bench", whose password hash
  is cheap (its cost is printed): a sign-in measures op-proxy, not argon2.
- oidc-provider: bench/provider.mjs, the same client; its development login form takes any password.
- hello: bench/hello.py under hypercorn: the ceiling of the stack op-proxy is built on.

Refresh tokens rotate and codes are single-use: the codes are prepared beforehand (a person signed in
once, then one authorization request per code, answered from the SSO session); the
authorization_code row spends each once and keeps the refresh tokens it gets, which the refresh_token
row then spends once each. How many are prepared follows the previous round's rate (about
``--duration`` seconds' worth). A round measures row by row, every server in turn (``GROUPS``), so
that the figures set side by side are taken seconds apart: ``serve --workers 2`` just before the one
worker, oidc-provider just after. Rows print the median over the rounds; a ratio is the median of the
rounds' own ratios (each of two figures taken seconds apart), so that a slow spell of a shared machine,
which lowers both figures of a round, does not move it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = ROOT / ".venv" / "bin" / "python"
SERVER_CORE, LOAD_CORE = "0", "1"
CLIENT_ID, CLIENT_SECRET = "demo", "demo-secret"
REDIRECT_URI = "http://127.0.0.1:5000/callback"
BENCH_USER, BENCH_PASSWORD = "bench", "bench-password"
CLK_TCK = os.sysconf("SC_CLK_TCK")

ROWS = [
    ("discovery", "discovery"),
    ("jwks", "JWKS"),
    ("refresh", "token, refresh_token grant"),
    ("code", "token, authorization_code grant"),
    ("userinfo", "userinfo"),
    ("introspection", "introspection"),
    ("signin", "complete sign-ins (authorize → form → code → token) /s"),
]


# -- small helpers -------------------------------------------------------------------------------

# The rows measured for op-proxy under uvicorn: one of each kind of work.
VARIANT_ROWS = ("discovery", "code", "refresh", "userinfo", "signin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LOOP = asyncio.new_event_loop()  # one loop for the whole run: connections outlive each step


def sync(coroutine):
    return LOOP.run_until_complete(coroutine)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the workers of serve --workers N)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def settle(server: Server, limit: float = 30) -> None:
    """Wait (at most ``limit`` s) until the server has finished what the previous row left queued."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = cpu_seconds(server.process.pid)
        time.sleep(0.25)
        if cpu_seconds(server.process.pid) - before < 0.25 * 0.1:
            return


@dataclass
class Result:
    rate: float  # per second
    p50: float  # ms
    p99: float  # ms
    errors: int = 0
    server_cpu: float = 0.0  # share of one core the server used during the run
    load_cpu: float = 0.0  # share of one core the load generator used


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    base: str
    log: Path
    endpoints: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def wait_until_answers(server: Server, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"bench: {server.name} exited:\n{server.log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", urlsplit(server.base).port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                if sock.recv(12).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bench: {server.name} did not answer {path} in {timeout} s")


# -- the servers ---------------------------------------------------------------------------------

def bench_person_hash() -> tuple[str, str]:
    from argon2 import PasswordHasher

    # argon2's cheapest (8 KiB, one pass): the sign-in rows measure the provider, not the hash
    # (issue 9's target excludes it; oidc-provider's development form checks no password at all).
    hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    hashed = hasher.hash(BENCH_PASSWORD)
    started = time.perf_counter()
    for _ in range(20):
        hasher.verify(hashed, BENCH_PASSWORD)
    cost = (time.perf_counter() - started) / 20 * 1000
    return hashed, f"argon2id m=8 KiB, t=1, p=1: {cost:.3f} ms per verification here"


def dev_config(cheap_demo_secret: bool) -> str:
    """conf/dev.toml as shipped; with ``cheap_demo_secret`` the demo client's argon2 secret hash at
    argon2's cheapest (how issue 9's first table looked at the provider's own cost)."""
    text = (ROOT / "conf" / "dev.toml").read_text(encoding="utf-8")
    if cheap_demo_secret:
        from argon2 import PasswordHasher

        cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(CLIENT_SECRET)
        text, changed = re.subn(r'^client_secret_hash = "\$argon2[^"]*"', f'client_secret_hash = "{cheap}"', text,
                                count=1, flags=re.M)
        if not changed:
            say("bench: the demo client's secret in conf/dev.toml is no argon2 hash: --cheap-demo-secret does nothing")
    return text


OPAQUE = "op-proxy, opaque access tokens"
UVICORN = "op-proxy under uvicorn"


def start_op_proxy(directory: Path, person_hash: str, workers: int = 1, cores: str = SERVER_CORE,
                   cheap_demo_secret: bool = False, variant: str | None = None) -> Server:
    """op-proxy as ``make run`` serves it; ``variant`` OPAQUE: the demo client's access tokens opaque
    (one signature per token response, as oidc-provider's); UVICORN: the same app under uvicorn."""
    port = free_port()
    name = variant or ("op-proxy" if workers == 1 else f"op-proxy --workers {workers}")
    home = directory / re.sub(r"[^a-z0-9-]+", "-", name)
    home.mkdir()
    config = home / "bench.toml"
    text = dev_config(cheap_demo_secret)
    if variant == OPAQUE:
        text = text.replace('client_id = "demo"\n', 'client_id = "demo"\naccess_token_format = "opaque"\n', 1)
    config.write_text(text + f"""

# make bench: a person whose password hash is cheap, so that a sign-in measures op-proxy, not argon2.
[[upstreams.local.users]]
username = "{BENCH_USER}"
password_hash = "{person_hash}"

[upstreams.local.users.claims]
name = "Bench Person"
email = "bench@example.ac.th"
""", encoding="utf-8")
    env = {**os.environ,
           "OP_PROXY_SERVER_ISSUER": f"http://127.0.0.1:{port}", "OP_PROXY_SERVER_PORT": str(port),
           "OP_PROXY_DATABASE_URL": f"sqlite+aiosqlite:///{home}/bench.sqlite3",
           "OP_PROXY_KEYS_DIRECTORY": str(home / "keys"),
           # The code row spends codes prepared beforehand: they must outlive their preparation.
           "OP_PROXY_TOKENS_AUTHORIZATION_CODE_LIFETIME": "600"}
    log = home / "op-proxy.log"
    command = [str(ROOT / ".venv" / "bin" / "op-proxy"), "--config", str(config), "serve", "--workers", str(workers)]
    if variant == UVICORN:
        subprocess.run([str(ROOT / ".venv" / "bin" / "op-proxy"), "--config", str(config), "db", "upgrade"],
                       cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        env["BENCH_OP_PROXY_CONFIG"] = str(config)
        command = [str(ROOT / ".venv" / "bin" / "uvicorn"), "bench.uvicorn_app:app", "--host", "127.0.0.1",
                   "--port", str(port), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(["taskset", "-c", cores, *command],
                               cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    wait_until_answers(server, "/readyz")
    return server


def start_oidc_provider(directory: Path) -> Server:
    port = free_port()
    log = directory / "oidc-provider.log"
    process = subprocess.Popen(["taskset", "-c", SERVER_CORE, "node", str(BENCH / "provider.mjs"), str(port)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    server = Server("oidc-provider", process, f"http://127.0.0.1:{port}", log)
    wait_until_answers(server, "/.well-known/openid-configuration")
    return server


def start_hello(directory: Path) -> Server:
    port = free_port()
    log = directory / "hello.log"
    process = subprocess.Popen(["taskset", "-c", SERVER_CORE, str(ROOT / ".venv" / "bin" / "hypercorn"),
                                "--bind", f"127.0.0.1:{port}", str(BENCH / "hello.py") + ":app"],
                               cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = Server("hello", process, f"http://127.0.0.1:{port}", log)
    wait_until_answers(server, "/")
    return server


# -- a small HTTP/1.1 client (sign-ins and preparing codes) -------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection; just enough for the flows (no TLS, no pipelining)."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.reader = self.writer = None

    async def request(self, method: str, target: str, headers: dict | None = None, body: bytes = b""):
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
            lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
            if body or method == "POST":
                lines.append(f"Content-Length: {len(body)}")
            try:
                self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
                head = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if fresh or attempt == 2:
                    raise
                continue  # the server closed an idle keep-alive connection: once more on a new one
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split(" ", 2)[1])
            answer_headers: list[tuple[str, str]] = []
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    answer_headers.append((name.strip().lower(), value.strip()))
            found = dict(answer_headers)
            if found.get("transfer-encoding", "").lower() == "chunked":
                content = b""
                while size := int((await self.reader.readline()).split(b";")[0], 16):
                    content += await self.reader.readexactly(size + 2)
                    content = content[:-2]
                await self.reader.readline()
            else:
                content = await self.reader.readexactly(int(found.get("content-length", "0")))
            if found.get("connection", "").lower() == "close":
                self.close()
            return status, answer_headers, content
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Browser:
    """A person's browser on one connection: cookies (by name; one site), redirects, forms."""

    def __init__(self, connection: Connection):
        self.connection, self.cookies = connection, {}

    async def go(self, url: str, method: str = "GET", form: dict | None = None):
        headers = {"Accept-Language": "en"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        status, headers_back, content = await self.connection.request(method, target, headers, body)
        for name, value in headers_back:
            if name == "set-cookie":
                cookie = value.split(";", 1)[0]
                key, _, val = cookie.partition("=")
                if "expires=Thu, 01 Jan 1970" in value or "max-age=0" in value.lower():
                    self.cookies.pop(key.strip(), None)
                else:
                    self.cookies[key.strip()] = val.strip()
        return status, dict(headers_back), content

    async def until_application(self, url: str, *, password: str | None) -> str:
        """Follow redirects and fill the password form; the code the application receives."""
        method, form = "GET", None
        for _step in range(12):
            if url.startswith(REDIRECT_URI):
                params = parse_qs(urlsplit(url).query)
                if "code" not in params:
                    raise RuntimeError(f"no code: {params}")
                return params["code"][0]
            status, headers, content = await self.go(url, method, form)
            if status in (301, 302, 303, 307):
                url, method, form = urljoin(url, headers["location"]), "GET", None
                continue
            page = content.decode(errors="replace")
            if status == 200 and password is not None and 'name="password"' in page:
                url, form = fill_password_form(url, page, password)
                method = "POST"
                continue
            raise RuntimeError(f"sign-in stopped at {url} with {status}: {page[:300]}")
        raise RuntimeError("sign-in did not finish in 12 steps")


def fill_password_form(url: str, page: str, password: str) -> tuple[str, dict]:
    forms = re.findall(r"<form\b([^>]*)>(.*?)</form>", page, re.S)
    attributes, body = next((a, b) for a, b in forms if 'name="password"' in b)
    action = re.search(r'action="([^"]*)"', attributes)
    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", body):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if name:
            fields[unescape(name.group(1))] = unescape(value.group(1)) if value else ""
    for user_field in ("username", "login"):
        if user_field in fields:
            fields[user_field] = BENCH_USER
    fields["password"] = password
    return urljoin(url, unescape(action.group(1)) if action else url), fields


def authorization_url(server: Server, number: int) -> str:
    return server.endpoints["authorization_endpoint"] + "?" + urlencode({
        "client_id": CLIENT_ID, "redirect_uri": REDIRECT_URI, "response_type": "code",
        "scope": "openid profile email", "state": f"s{number}", "nonce": f"n{number}"})


def basic_auth() -> str:
    return "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()


async def exchange(connection: Connection, server: Server, form: dict) -> dict:
    token_path = urlsplit(server.endpoints["token_endpoint"]).path
    status, _headers, content = await connection.request(
        "POST", token_path, {"Authorization": basic_auth(), "Content-Type": "application/x-www-form-urlencoded"},
        urlencode(form).encode())
    if status != 200:
        raise RuntimeError(f"{server.name} token endpoint: {status} {content[:200]!r}")
    return json.loads(content)


async def discover(server: Server) -> None:
    connection = Connection(server.base)
    status, _h, content = await connection.request("GET", "/.well-known/openid-configuration")
    connection.close()
    server.endpoints = json.loads(content)


async def signed_in_browser(server: Server) -> tuple[Browser, dict]:
    """A person signed in once (its SSO session in the browser) and the tokens the application got."""
    browser = Browser(Connection(server.base))
    code = await browser.until_application(authorization_url(server, 0), password=BENCH_PASSWORD)
    tokens = await exchange(browser.connection, server, {"grant_type": "authorization_code", "code": code,
                                                         "redirect_uri": REDIRECT_URI})
    return browser, tokens


async def prepare_codes(server: Server, browser: Browser, count: int, concurrency: int = 16) -> list[str]:
    """``count`` codes, each one authorization request answered from the person's SSO session."""
    codes: list[str] = []
    numbers = iter(range(1, count + 1))

    async def one_tab():
        tab = Browser(Connection(server.base))
        tab.cookies = browser.cookies  # the same browser: the same session cookie
        for number in numbers:
            codes.append(await tab.until_application(authorization_url(server, number), password=None))
        tab.connection.close()

    await asyncio.gather(*(one_tab() for _ in range(concurrency)))
    return codes


async def sign_ins(server: Server, duration: float, concurrency: int) -> Result:
    """People signing in, each in a new browser, for ``duration`` seconds: authorize → password form
    → code → token. Measured per complete sign-in."""
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration
    counter = iter(range(10**9))

    async def person_after_person():
        nonlocal errors
        connection = Connection(server.base)
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                browser = Browser(connection)
                code = await browser.until_application(authorization_url(server, next(counter)),
                                                       password=BENCH_PASSWORD)
                await exchange(connection, server, {"grant_type": "authorization_code", "code": code,
                                                    "redirect_uri": REDIRECT_URI})
            except (RuntimeError, OSError, asyncio.IncompleteReadError, KeyError, ValueError):
                errors += 1
                connection.close()
                continue
            latencies.append(time.perf_counter() - started)
        connection.close()

    settle(server)
    cpu_before, server_before, started = time.process_time(), cpu_seconds(server.process.pid), time.monotonic()
    await asyncio.gather(*(person_after_person() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    if not latencies:
        raise RuntimeError(f"{server.name}: no sign-in finished ({errors} failed)")
    latencies.sort()
    return Result(len(latencies) / elapsed, latencies[len(latencies) // 2] * 1000,
                  latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, errors,
                  (cpu_seconds(server.process.pid) - server_before) / elapsed,
                  (time.process_time() - cpu_before) / elapsed)


# -- wrk -----------------------------------------------------------------------------------------

REPORT_LUA = r"""
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
           int clock_gettime(int, bench_timespec *); ]]
local clock = ffi.new("bench_timespec")
function now()
  ffi.C.clock_gettime(1, clock)  -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end
-- Each thread notes its first request and its last good answer: a row whose single-use tokens run out
-- before the end of -d is measured over the time they lasted (wrk's own duration is always -d).
first_at, last_at, good = 0, 0, 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function note_request() if first_at == 0 then first_at = now() end end
function note_response(status) if status >= 200 and status < 400 then good = good + 1; last_at = now() end end
function done(summary, latency, requests)
  local e = summary.errors
  local first, last, ok = math.huge, 0, 0
  for _, thread in ipairs(threads) do
    local f, l = thread:get("first_at"), thread:get("last_at")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
    ok = ok + thread:get("good")
  end
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d, "good": %d, "span_us": %d}\n', summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    ok, last > first and (last - first) * 1e6 or 0))
end
"""

STATIC_LUA = REPORT_LUA + r"""
function init(args)
  if args[1] == "POST" then
    wrk.method = "POST"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
end
"""

# Single-use tokens: each line of the file once; then a bogus one (a cheap invalid_grant) while the
# connections still busy finish, and the thread stops. Refresh tokens received are written out.
TOKENS_LUA = REPORT_LUA + r"""
local tokens, index, kind, out = {}, 0, nil, nil
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  kind = args[2]
  if args[3] and args[3] ~= "" then
    out = io.open(args[3], "w")
    out:setvbuf("line")
  end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
end
function request()
  note_request()
  index = index + 1
  local token = tokens[index]
  if token == nil then
    token = "spent"
    wrk.thread:stop()
  end
  local body
  if kind == "code" then
    body = "grant_type=authorization_code&code=" .. token .. "&redirect_uri=http%3A%2F%2F127.0.0.1%3A5000%2Fcallback"
  else
    body = "grant_type=refresh_token&refresh_token=" .. token
  end
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  note_response(status)
  if out and status == 200 then
    local refresh = string.match(body, '"refresh_token"%s*:%s*"([^"]+)"')
    if refresh then out:write(refresh, "\n") end
  end
end
"""


def wrk(server: Server, url: str, script: Path, *, duration: float, connections: int, headers=(),
        args=(), single_use: int | None = None) -> Result:
    settle(server)
    command = ["chrt", "--batch", "0", "taskset", "-c", LOAD_CORE,
               "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
               "--timeout", "30s", "--latency", "-s", str(script)]
    for header in headers:
        command += ["-H", header]
    command += [url, "--", *args]
    server_before, load_before, started = cpu_seconds(server.process.pid), os.times(), time.monotonic()
    run = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    elapsed = time.monotonic() - started
    load_after = os.times()
    line = next((x for x in run.stdout.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({run.returncode}): {run.stdout[-500:]} {run.stderr[-500:]}")
    report = json.loads(line[6:])
    seconds = report["duration_us"] / 1e6
    good = report["requests"] - report["status_errors"]
    spare = 0
    if single_use is not None:  # the bogus requests after the last token are expected errors
        spare = min(report["status_errors"], max(0, report["requests"] - single_use))
        # Single-use tokens usually run out before -d, and the thread stops (often before any bogus
        # request is answered): the row is the good answers over the time they lasted, never over -d.
        if report["span_us"]:
            good, seconds = report["good"], report["span_us"] / 1e6
    load = (load_after.children_user + load_after.children_system
            - load_before.children_user - load_before.children_system)
    return Result(good / seconds, report["p50_us"] / 1000, report["p99_us"] / 1000,
                  report["errors"] + report["status_errors"] - spare,
                  (cpu_seconds(server.process.pid) - server_before) / elapsed, max(0.0, load) / elapsed)


# -- one round -----------------------------------------------------------------------------------

@dataclass
class Plan:
    duration: float
    connections: int
    sign_in_concurrency: int
    rates: dict = field(default_factory=dict)  # (server, row) -> last rate, to size single-use batches
    # The first round's single-use batch, before a rate is known: about -d seconds of op-proxy's token
    # row on a fast core. A row that lasts only a second or two is at the mercy of one pause (a WAL
    # checkpoint, a neighbour on the host): later rounds are sized from the rate measured.
    first_batch: int = 3000

    def batch(self, server: str) -> int:
        rate = self.rates.get((server, "code"))
        if rate is None:
            return self.first_batch
        return int(min(50_000, max(100, rate * self.duration * 1.1)))


# Rows measured together. A round gives every server its turn at one group before the next group
# starts, so the figures the table sets side by side (op-proxy and oidc-provider, one worker and two)
# are taken seconds apart, not minutes: a shared machine's slow spells then fall on both alike.
GROUPS = (("discovery",), ("jwks",), ("code", "refresh"), ("userinfo",), ("introspection",), ("signin",))


@dataclass
class Visit:
    """A server over one round: a person signed in once (the codes are prepared from that session)
    and the access token the application got (userinfo and introspection ask with it)."""

    server: Server
    browser: Browser
    access_token: str

    def close(self) -> None:
        self.browser.connection.close()


def visit(server: Server) -> Visit:
    sync(discover(server))
    browser, tokens = sync(signed_in_browser(server))
    return Visit(server, browser, tokens["access_token"])


def measure_rows(visit: Visit, plan: Plan, work: Path, rows: list[str]) -> dict[str, Result]:
    results: dict[str, Result] = {}
    server, access_token = visit.server, visit.access_token
    endpoints = server.endpoints
    static_lua, tokens_lua = work / "static.lua", work / "tokens.lua"
    run = {"duration": plan.duration, "connections": plan.connections}

    if "discovery" in rows:
        results["discovery"] = wrk(server, server.base + "/.well-known/openid-configuration", static_lua, **run)
    if "jwks" in rows:
        results["jwks"] = wrk(server, endpoints["jwks_uri"], static_lua, **run)
    if "code" in rows or "refresh" in rows:
        count = plan.batch(server.name)
        codes_file, refresh_file = work / f"{server.name}-codes", work / f"{server.name}-refresh"
        say(f"  {server.name}: preparing {count} codes")
        codes = sync(prepare_codes(server, visit.browser, count))
        codes_file.write_text("\n".join(codes) + "\n")
        results["code"] = wrk(server, endpoints["token_endpoint"], tokens_lua, **run,
                              headers=[f"Authorization: {basic_auth()}"],
                              args=[str(codes_file), "code", str(refresh_file)], single_use=len(codes))
        plan.rates[(server.name, "code")] = results["code"].rate
        if "refresh" in rows:
            spendable = len(refresh_file.read_text().split())
            results["refresh"] = wrk(server, endpoints["token_endpoint"], tokens_lua, **run,
                                     headers=[f"Authorization: {basic_auth()}"],
                                     args=[str(refresh_file), "refresh", ""], single_use=spendable)
    if "userinfo" in rows:
        results["userinfo"] = wrk(server, endpoints["userinfo_endpoint"], static_lua, **run,
                                  headers=[f"Authorization: Bearer {access_token}"])
    if "introspection" in rows:
        results["introspection"] = wrk(server, endpoints["introspection_endpoint"], static_lua, **run,
                                       headers=[f"Authorization: {basic_auth()}"],
                                       args=["POST", urlencode({"token": access_token})])
    if "signin" in rows:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
        results["signin"] = sync(sign_ins(server, plan.duration, plan.sign_in_concurrency))
    return results


def report(name: str, row: str, result: Result) -> None:
    say(f"  {name}, {row}: {number(result.rate)}/s p50 {result.p50:.1f} ms p99 {result.p99:.1f} ms"
        f" (server CPU {result.server_cpu:.0%}, load generator CPU {result.load_cpu:.0%}"
        + (f", {result.errors} errors" if result.errors else "") + ")")


# -- the table -----------------------------------------------------------------------------------

def median_result(results: list[Result]) -> Result | None:
    if not results:
        return None
    pick = sorted(results, key=lambda r: r.rate)[len(results) // 2]
    return Result(statistics.median(r.rate for r in results), statistics.median(r.p50 for r in results),
                  statistics.median(r.p99 for r in results), sum(r.errors for r in results),
                  pick.server_cpu, pick.load_cpu)


def paired_ratio(collected: dict, ours: tuple, theirs: tuple) -> float | None:
    """``ours`` ÷ ``theirs`` as the median of each round's own ratio: the two figures of a round were
    taken seconds apart, so a slow spell of a shared machine lowers both. The ratio of the medians
    when the rounds do not pair up (a row missing from a round)."""
    mine, other = collected.get(ours) or [], collected.get(theirs) or []
    if not mine or not other:
        return None
    if len(mine) == len(other) and all(result.rate for result in other):
        return statistics.median(a.rate / b.rate for a, b in zip(mine, other, strict=True))
    middle = median_result(other).rate
    return median_result(mine).rate / middle if middle else None


def shown(ratio: float | None, empty: str = "–") -> str:
    return f"{ratio:.2f}" if ratio is not None else empty


def number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def latencies(result: Result) -> str:
    return f"{result.p50:.1f} / {result.p99:.1f}" if result.rate else "none answered"


def print_table(collected: dict, rounds: int) -> None:
    med = {key: median_result(values) for key, values in collected.items()}
    hello = med.get(("hello", "hello"))
    print()
    print(f"Median of {rounds} round(s); req/s (p50 / p99 ms); server and load generator CPU as a share of one core;"
          " ratio = op-proxy ÷ oidc-provider; ÷ hello = op-proxy ÷ the Quart hello-world's req/s; each ratio is the"
          " median of the rounds' own ratios. \"none answered\": no response within the row's duration.")
    print()
    print("| row | op-proxy req/s | p50 / p99 ms | oidc-provider req/s | p50 / p99 ms | ratio | ÷ hello "
          "| op-proxy CPU / load gen CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, title in ROWS:
        ours, theirs = med.get(("op-proxy", key)), med.get(("oidc-provider", key))
        if ours is None and theirs is None:
            continue
        cells = [title]
        for result in (ours, theirs):
            cells += [number(result.rate), latencies(result)] if result else ["–", "–"]
        cells.append(shown(paired_ratio(collected, ("op-proxy", key), ("oidc-provider", key))))
        ceiling = paired_ratio(collected, ("op-proxy", key), ("hello", "hello")) if key != "signin" else None
        cells.append(shown(ceiling, ""))
        cells.append(f"{ours.server_cpu:.0%} / {ours.load_cpu:.0%}" if ours else "")
        print("| " + " | ".join(cells) + " |")
    for variant, rows in ((OPAQUE, ("code", "refresh")), (UVICORN, VARIANT_ROWS)):
        for key, title in ROWS:
            other = med.get((variant, key))
            if key not in rows or other is None:
                continue
            ratio = shown(paired_ratio(collected, (variant, key), ("oidc-provider", key)))
            against = paired_ratio(collected, (variant, key), ("op-proxy", key))
            against = f" ({against:.2f} × op-proxy)" if against is not None else ""
            ceiling = shown(paired_ratio(collected, (variant, key), ("hello", "hello")), "") if key != "signin" else ""
            print(f"| {title}, {variant} | {number(other.rate)} | {latencies(other)} | | | {ratio}{against} | "
                  f"{ceiling} | {other.server_cpu:.0%} / {other.load_cpu:.0%} |")
    for key, title in (("code", "token, authorization_code grant"), ("refresh", "token, refresh_token grant")):
        two = med.get(("op-proxy --workers 2", key))
        if two:
            scale = paired_ratio(collected, ("op-proxy --workers 2", key), ("op-proxy", key))
            scale = f"{scale:.2f} × one worker" if scale is not None else ""
            print(f"| {title}, `serve --workers 2` on two cores | {number(two.rate)} | "
                  f"{latencies(two)} | | | {scale} | | {two.server_cpu:.0%} / {two.load_cpu:.0%} |")
    if hello:
        print(f"| Quart + hypercorn hello (the ceiling) | {number(hello.rate)} | {hello.p50:.1f} / {hello.p99:.1f} "
              f"| | | | | {hello.server_cpu:.0%} / {hello.load_cpu:.0%} |")
    errors = {f"{server} {row}": r.errors for (server, row), r in med.items() if r and r.errors}
    if errors:
        print(f"\nerrors (connection errors and non-2xx answers, all rounds): {errors}")


# Issue 9's targets, each a ratio of two rows of the same run and the least it may be.
TARGETS = (
    ("token, refresh_token grant ÷ oidc-provider", ("op-proxy", "refresh"), ("oidc-provider", "refresh"), 0.5),
    ("token, authorization_code grant ÷ oidc-provider", ("op-proxy", "code"), ("oidc-provider", "code"), 0.5),
    ("complete sign-ins ÷ oidc-provider", ("op-proxy", "signin"), ("oidc-provider", "signin"), 0.4),
    ("userinfo ÷ oidc-provider", ("op-proxy", "userinfo"), ("oidc-provider", "userinfo"), 0.3),
    ("introspection ÷ oidc-provider", ("op-proxy", "introspection"), ("oidc-provider", "introspection"), 0.3),
    ("discovery ÷ the hello ceiling", ("op-proxy", "discovery"), ("hello", "hello"), 0.9),
    ("JWKS ÷ the hello ceiling", ("op-proxy", "jwks"), ("hello", "hello"), 0.9),
    ("token, authorization_code grant, `--workers 2` ÷ one worker",
     ("op-proxy --workers 2", "code"), ("op-proxy", "code"), 1.7),
    ("token, refresh_token grant, `--workers 2` ÷ one worker",
     ("op-proxy --workers 2", "refresh"), ("op-proxy", "refresh"), 1.7),
)


@dataclass
class Verdict:
    target: str
    ratio: float | None  # None: a row it needs was not measured
    least: float

    @property
    def met(self) -> bool:
        return self.ratio is not None and self.ratio >= self.least


def verdicts(collected: dict) -> list[Verdict]:
    return [Verdict(target, paired_ratio(collected, ours, theirs), least)
            for target, ours, theirs, least in TARGETS]


def print_targets(collected: dict, shipped_config: bool) -> bool:
    """Each target with its ratio to three places (the table's two may round 0.499 up to 0.50);
    True when every one was measured and met."""
    found = verdicts(collected)
    print()
    print("| issue 9's target | measured | at least | met |")
    print("|---|---:|---:|---|")
    for verdict in found:
        measured = f"{verdict.ratio:.3f}" if verdict.ratio is not None else "not measured"
        print(f"| {verdict.target} | {measured} | {verdict.least} | {'yes' if verdict.met else '**no**'} |")
    missed = [verdict.target for verdict in found if not verdict.met]
    print()
    if not shipped_config:
        print("(--cheap-demo-secret: not the shipped config, which the targets are about)")
    print("every target met" if not missed else f"targets not met: {'; '.join(missed)}")
    return not missed and shipped_config


# -- main ----------------------------------------------------------------------------------------

def check_tools() -> None:
    missing = [tool for tool in ("wrk", "taskset", "chrt", "node") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench: missing {', '.join(missing)} (Debian: apt-get install wrk util-linux nodejs)")
    if not (ROOT / "tests" / "peers" / "node_modules" / "oidc-provider").exists():
        raise SystemExit("bench: oidc-provider is not installed: run `make peers`")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench: needs two cores (server on core 0, load generator on core 1)")


def rows_of(name: str, all_rows: list[str]) -> list[str]:
    """The rows measured for a server: all of them for op-proxy and oidc-provider; the token rows for
    two workers and for opaque access tokens; one row of each kind of work under uvicorn."""
    if name.endswith("--workers 2") or name == OPAQUE:
        return ["code", "refresh"]
    if name == UVICORN:
        return list(VARIANT_ROWS)
    return all_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each row prints its median (default 5)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per row and round (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk keep-alive connections (default 32)")
    parser.add_argument("--sign-in-concurrency", type=int, default=16, help="people signing in at once")
    parser.add_argument("--quick", action="store_true", help="one short round: a fast try, not a measurement")
    parser.add_argument("--check", action="store_true",
                        help="every row for about one second with few tokens: does the bench itself work")
    parser.add_argument("--cheap-demo-secret", action="store_true",
                        help="the demo client's secret hashed at argon2's cheapest (not the shipped config)")
    parser.add_argument("--only", choices=["op-proxy", "oidc-provider", "hello", "workers", "opaque", "uvicorn"],
                        action="append", help="measure only these (repeat); default all (uvicorn when installed: "
                                              "pip install -e '.[bench]')")
    args = parser.parse_args(argv)
    plan = Plan(args.duration, args.connections, args.sign_in_concurrency)
    if args.quick:
        args.rounds, plan.duration, plan.first_batch = 1, 2, 400
    if args.check:
        args.rounds, plan.duration, plan.connections, plan.sign_in_concurrency, plan.first_batch = 1, 1, 4, 2, 20
    only = set(args.only or ["op-proxy", "oidc-provider", "hello", "workers", "opaque", "uvicorn"])
    if "uvicorn" in only and not (ROOT / ".venv" / "bin" / "uvicorn").exists():
        say("bench: uvicorn is not installed (pip install -e '.[bench]'): no uvicorn rows")
        only.discard("uvicorn")
    check_tools()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the servers it started stop with it

    load = os.getloadavg()[0]
    say(f"bench: {os.cpu_count()} cores, load average {load:.2f}"
        + (" (the machine is busy: figures will be low and noisy)" if load > 0.5 else ""))
    person_hash, cost = bench_person_hash()
    print(f"bench person '{BENCH_USER}': password hash {cost}")
    print("op-proxy: conf/dev.toml " + ("with the demo client's secret hashed at argon2's cheapest"
                                        if args.cheap_demo_secret else "as shipped"))
    all_rows = [key for key, _title in ROWS]
    collected: dict[tuple, list[Result]] = {}
    work = Path(tempfile.mkdtemp(prefix="op-proxy-bench-"))
    servers: list[Server] = []
    try:
        if "hello" in only:
            servers.append(start_hello(work))
        if "workers" in only:  # measured just before the one worker it is compared with
            servers.append(start_op_proxy(work, person_hash, workers=2, cores=f"{SERVER_CORE},{LOAD_CORE}",
                                          cheap_demo_secret=args.cheap_demo_secret))
        if "op-proxy" in only:
            servers.append(start_op_proxy(work, person_hash, cheap_demo_secret=args.cheap_demo_secret))
        if "oidc-provider" in only:
            servers.append(start_oidc_provider(work))
        if "opaque" in only:
            servers.append(start_op_proxy(work, person_hash, cheap_demo_secret=args.cheap_demo_secret, variant=OPAQUE))
        if "uvicorn" in only:
            servers.append(start_op_proxy(work, person_hash, cheap_demo_secret=args.cheap_demo_secret, variant=UVICORN))
        (work / "static.lua").write_text(STATIC_LUA)
        (work / "tokens.lua").write_text(TOKENS_LUA)
        hello = next((server for server in servers if server.name == "hello"), None)
        measured = [server for server in servers if server is not hello]
        for number_ in range(1, args.rounds + 1):
            visits: list[Visit] = []
            try:
                visits = [visit(server) for server in measured]
                for group in GROUPS:
                    say(f"round {number_}/{args.rounds}: {', '.join(group)}")
                    if hello is not None and group == GROUPS[0]:  # the ceiling, beside the discovery rows
                        result = wrk(hello, hello.base + "/", work / "static.lua", duration=plan.duration,
                                     connections=plan.connections)
                        collected.setdefault(("hello", "hello"), []).append(result)
                        report("hello", "hello", result)
                    for server_visit in visits:
                        rows = [row for row in group if row in rows_of(server_visit.server.name, all_rows)]
                        if not rows:
                            continue
                        for row, result in measure_rows(server_visit, plan, work, rows).items():
                            collected.setdefault((server_visit.server.name, row), []).append(result)
                            report(server_visit.server.name, row, result)
            finally:
                for server_visit in visits:
                    server_visit.close()
        print_table(collected, args.rounds)
        print_targets(collected, shipped_config=not args.cheap_demo_secret)
        if load > 0.5:
            print(f"\nThe machine was busy (load average {load:.2f} at the start): rerun on a quiet one.")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
