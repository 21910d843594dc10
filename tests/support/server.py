"""A real op-proxy: ``op-proxy serve`` (hypercorn) in its own process, on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from op_proxy.security import hash_secret, secret_digest
from tests.support.processes import terminate

ROOT = Path(__file__).resolve().parents[2]

DEMO_SECRET_HASH = secret_digest("demo-secret")  # as conf/dev.toml stores it: no argon2 per /token call
DEMO_PASSWORD_HASH = hash_secret("demo")
OTHER_PASSWORD_HASH = hash_secret("other-password")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + " }"
    raise TypeError(value)


DEMO_PROFILE = {
    "id": "6400001", "username": "demo", "name": "สมชาย ใจดี", "firstName": "สมชาย", "lastName": "ใจดี",
    "email": "somchai.j@example.ac.th", "phone_number": "+66 74 000 0000", "department": "ภาควิชาวิศวกรรมคอมพิวเตอร์",
    "position": "นักวิชาการคอมพิวเตอร์", "campus": "วิทยาเขตหาดใหญ่",
    "officeName": "สำนักนวัตกรรมดิจิทัลและระบบอัจฉริยะ", "facultyId": "F10", "departmentId": "D1001",
    "campusId": "C01", "groups": ["staff", "developer"], "pid": "1100700000019", "title": "นาย",
    "name_en": "Somchai Jaidee", "given_name_en": "Somchai", "family_name_en": "Jaidee",
    "birthdate": "1990-05-17", "gender": "male", "ial": "2.3",
}


def default_clients(port_hint: int = 5000) -> list[dict]:
    return [
        {"client_id": "demo", "name": "Demo application", "client_secret_hash": DEMO_SECRET_HASH,
         "redirect_uris": ["http://127.0.0.1:5000/callback", "http://localhost:5000/auth"],
         "post_logout_redirect_uris": ["http://127.0.0.1:5000/"]},
        {"client_id": "demo-post", "name": "Posts its secret", "client_secret_hash": DEMO_SECRET_HASH,
         "token_endpoint_auth_method": "client_secret_post",
         "redirect_uris": ["http://127.0.0.1:5001/callback"]},
        {"client_id": "demo-spa", "name": "Demo SPA", "token_endpoint_auth_method": "none",
         "redirect_uris": ["http://127.0.0.1:5173/callback"],
         "post_logout_redirect_uris": ["http://127.0.0.1:5173/"]},
        {"client_id": "second-app", "name": "Second application", "client_secret_hash": DEMO_SECRET_HASH,
         "redirect_uris": ["http://127.0.0.1:5002/callback"]},
        {"client_id": "consenting-app", "name": "Asks for consent", "client_secret_hash": DEMO_SECRET_HASH,
         "require_consent": True, "redirect_uris": ["http://127.0.0.1:5003/callback"]},
    ]


def write_config(directory: Path, *, port: int, database_url: str, clients: list[dict] | None = None,
                 extra: str = "") -> Path:
    lines = [
        "[server]", f'issuer = "http://127.0.0.1:{port}"', f"port = {port}", "secure_cookies = false", "",
        "[database]", f"url = {toml_value(database_url)}", "",
        "[keys]", f"directory = {toml_value(str(directory / 'keys'))}", "",
        "[tokens]", "authorization_code_lifetime = 60", "",
    ]
    for client in clients if clients is not None else default_clients():
        lines.append("[[clients]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in client.items()]
        lines.append("")
    lines += [
        "[upstreams.local]", 'kind = "local"', 'display_name = { th = "บัญชีทดลอง", en = "Demo accounts" }', "",
        "[[upstreams.local.users]]", 'username = "demo"', f'password_hash = "{DEMO_PASSWORD_HASH}"',
        f"claims = {toml_value(DEMO_PROFILE)}", "",
        "[[upstreams.local.users]]", 'username = "other"', f'password_hash = "{OTHER_PASSWORD_HASH}"',
        f"claims = {toml_value({'name': 'สมหญิง รักเรียน', 'username': 'other', 'email': 'somying@example.ac.th'})}",
        "", extra,
    ]
    path = directory / "op-proxy.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class OpProxyServer:
    """One ``op-proxy serve`` process. Several may share a database and a keys directory."""

    def __init__(self, config_path: Path, port: int, env: dict | None = None, serve_args: tuple[str, ...] = ()):
        self.config_path, self.port = config_path, port
        self.serve_args = tuple(serve_args)  # e.g. ("--workers", "2")
        self.issuer = f"http://127.0.0.1:{port}"
        self.base = f"http://127.0.0.1:{port}"  # where this process listens (the issuer may differ)
        self.env = {**os.environ, "OP_PROXY_CONFIG": str(config_path), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log_path = config_path.parent / f"op-proxy-{port}.log"

    def start(self) -> OpProxyServer:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "op_proxy.cli", "serve", *self.serve_args], cwd=ROOT,
                                        env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"op-proxy exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"op-proxy did not become ready:\n{self.log()}")

    def stop(self) -> None:
        terminate(self.process, getattr(self, "_log", None))

    def restart(self) -> OpProxyServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, path: str) -> str:
        return self.base + path
