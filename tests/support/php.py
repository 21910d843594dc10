"""A real PHP app: ``php -S`` (PHP's built-in web server) serving one of examples/clients/php-*."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.processes import terminate


def php_available() -> bool:
    return shutil.which("php") is not None


def php_extension_loaded(name: str) -> bool:
    """Whether ``php`` loads the extension (``redis`` is Debian's php-redis)."""
    if not php_available():
        return False
    listed = subprocess.run(["php", "-m"], capture_output=True, text=True, timeout=30).stdout
    return name.lower() in {line.strip().lower() for line in listed.splitlines()}


def redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def files_sessions(directory: Path) -> dict[str, str]:
    """php.ini settings for sessions kept as files in ``directory``."""
    return {"session.save_handler": "files", "session.save_path": str(directory)}


def redis_sessions(save_path: str = "tcp://127.0.0.1:6379") -> dict[str, str]:
    """php.ini settings for sessions kept in Redis (php-redis's session handler)."""
    return {"session.save_handler": "redis", "session.save_path": save_path}


@dataclass(frozen=True)
class OsUser:
    name: str
    uid: int
    gid: int


def _run_as_root(command: list[str]) -> None:
    """useradd and friends lock /etc/passwd; another test run may hold the lock for a moment."""
    for attempt in range(20):
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        if "lock" not in done.stderr.lower() or attempt == 19:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip()}")
        time.sleep(0.2)


@contextmanager
def throwaway_os_user(prefix: str = "opphp"):
    """A system user with a group of its own (both named ``prefix`` + random hex), removed after:
    the web server's user (``www-data`` on Debian) that PHP runs as, which op-proxy is not. Root only."""
    name = prefix + secrets.token_hex(4)
    _run_as_root(["groupadd", "--system", name])
    try:
        _run_as_root(["useradd", "--system", "--no-create-home", "--gid", name, "--shell", "/usr/sbin/nologin",
                      "--home-dir", "/nonexistent", name])
        try:
            yield OsUser(name, pwd.getpwnam(name).pw_uid, grp.getgrnam(name).gr_gid)
        finally:
            _run_as_root(["userdel", name])
    finally:
        try:
            grp.getgrnam(name)
        except KeyError:
            pass  # userdel removed the group with its last member
        else:
            _run_as_root(["groupdel", name])


def running_as_root() -> bool:
    return os.geteuid() == 0 and shutil.which("setpriv") is not None and shutil.which("useradd") is not None


def faketime_library() -> str | None:
    """libfaketime (Debian: faketime), to run PHP with a clock that is off like a real server's."""
    for candidate in ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
                      "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1"):
        if Path(candidate).exists():
            return candidate
    return None


def clock_off_by(seconds: int) -> dict[str, str]:
    """Environment for a PHP whose clock is ``seconds`` off (negative: behind) from this machine's."""
    library = faketime_library()
    assert library, "libfaketime is not installed (Debian: apt-get install faketime)"
    return {"LD_PRELOAD": library, "FAKETIME": f"{seconds:+d}", "DONT_FAKE_MONOTONIC": "1"}


class PhpServer:
    """``php -S 127.0.0.1:PORT -t DOCROOT [ROUTER]`` with ``env`` added to the environment and ``ini``
    passed as ``-d name=value`` options (e.g. :func:`files_sessions` or :func:`redis_sessions`).
    With ``user`` (an :class:`OsUser`), PHP runs as that user and group only, through ``setpriv``."""

    def __init__(self, docroot: Path | str, port: int, env: dict | None = None, router: str | None = None,
                 ini: dict | None = None, log_dir: Path | str | None = None, user: OsUser | None = None):
        self.docroot, self.port, self.router, self.user = Path(docroot), port, router, user
        self.base = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        # PHP errors go to the log, never into a page (where they would break header()).
        self.ini = {"display_errors": "stderr", "log_errors": "1", **(ini or {})}
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="php-server-"))
        self.log_path = self.log_dir / f"php-{port}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        options = [f"-d{name}={value}" for name, value in self.ini.items()]
        as_user = ["setpriv", f"--reuid={self.user.uid}", f"--regid={self.user.gid}", "--clear-groups", "--"] \
            if self.user else []
        return [*as_user, "php", *options, "-S", f"127.0.0.1:{self.port}", "-t", str(self.docroot),
                *([self.router] if self.router else [])]

    def start(self, timeout: float = 20) -> PhpServer:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), cwd=self.docroot, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"php -S exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.get(self.base + "/", timeout=1)  # any answer (even a 404) means it serves
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"php -S did not answer on port {self.port}:\n{self.log()}")

    def stop(self) -> None:
        terminate(self.process, getattr(self, "_log", None))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str) -> str:
        return self.base + path
