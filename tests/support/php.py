"""A real PHP app: ``php -S`` (PHP's built-in web server) serving one of examples/clients/php-*."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
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


class PhpServer:
    """``php -S 127.0.0.1:PORT -t DOCROOT [ROUTER]`` with ``env`` added to the environment and ``ini``
    passed as ``-d name=value`` options (e.g. :func:`files_sessions` or :func:`redis_sessions`)."""

    def __init__(self, docroot: Path | str, port: int, env: dict | None = None, router: str | None = None,
                 ini: dict | None = None, log_dir: Path | str | None = None):
        self.docroot, self.port, self.router = Path(docroot), port, router
        self.base = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, **(env or {})}
        # PHP errors go to the log, never into a page (where they would break header()).
        self.ini = {"display_errors": "stderr", "log_errors": "1", **(ini or {})}
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="php-server-"))
        self.log_path = self.log_dir / f"php-{port}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        options = [f"-d{name}={value}" for name, value in self.ini.items()]
        return ["php", *options, "-S", f"127.0.0.1:{self.port}", "-t", str(self.docroot),
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
