"""A real nginx in front of op-proxy, configured as reverse-proxy guides configure it: it appends the
address it saw to X-Forwarded-For (``$proxy_add_x_forwarded_for``) and passes the Host it was asked."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.peers import require_peer
from tests.support.processes import terminate
from tests.support.server import free_port

CONFIG = """
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            # Here the issuer is op-proxy's own address; nginx would otherwise rewrite redirects to
            # it into the Host it was asked for, hiding what op-proxy itself answers.
            proxy_redirect off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


def nginx_or_skip() -> str:
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    require_peer("nginx", nginx is not None, "not installed (Debian package nginx)")
    return nginx


class Nginx:
    def __init__(self, directory: Path, upstream_port: int):
        self.directory, self.port = directory, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "nginx.conf"
        self.config.write_text(CONFIG.format(dir=directory, port=self.port, upstream_port=upstream_port))
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        self._log = (self.directory / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [nginx_or_skip(), "-e", str(self.directory / "error.log"), "-p", str(self.directory),
             "-c", str(self.config), "-g", "daemon off;"], stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("nginx exited: " + (self.directory / "error.log").read_text(errors="replace"))
            try:
                httpx.get(self.base + "/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("nginx did not start")

    def stop(self) -> None:
        terminate(self.process, getattr(self, "_log", None))
