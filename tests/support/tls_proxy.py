"""A real nginx terminating TLS in front of op-proxy, with a certificate authority made for one test.

nginx runs unprivileged (as ``nobody`` when the suite runs as root) with its own prefix, logs and
temporary directories, from ``examples/deploy/nginx.conf`` with only the machine-specific values
(addresses, ports, certificate paths) replaced, so the example is what the test proves.
"""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.peers import require_peer
from tests.support.processes import terminate
from tests.support.server import ROOT

EXAMPLE_NGINX_CONF = ROOT / "examples" / "deploy" / "nginx.conf"


def nginx_or_skip() -> str:
    """The nginx binary (Debian's ``nginx`` package), or a skip saying why (a failure under CI=true)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    require_peer("nginx", found is not None, "not installed (Debian package nginx)")
    return found


class ThrowAwayCA:
    """A certificate authority that lives as long as one test: what a client trusts instead of the
    system's CAs, and the server certificate it signs for nginx."""

    def __init__(self, name: str = "op-proxy tests: throw-away CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.certificate = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        return self.certificate.public_bytes(Encoding.PEM)

    def write(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        return path

    def issue_server_certificate(self, directory: Path, addresses=("127.0.0.1",), names=("localhost",)):
        """A server certificate for these IP addresses and DNS names: (certificate path, key path)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        alternative_names = ([x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
                             + [x509.DNSName(n) for n in names])
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (names or addresses)[0])]))
            .issuer_name(self.certificate.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        certificate_path, key_path = directory / "server.fullchain.pem", directory / "server.key"
        certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM) + self.pem())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        key_path.chmod(0o600)
        return certificate_path, key_path

    def client_context(self) -> ssl.SSLContext:
        """What a client library verifies nginx's certificate with: this CA only."""
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=self.pem().decode())
        return context


def render_example(replacements: list[tuple[str, str]], source: Path = EXAMPLE_NGINX_CONF) -> str:
    """The example config with machine-specific values swapped in order, each ``old`` text replaced
    at its first remaining occurrence (so the test fails loudly if the example changes under it)."""
    text = source.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{source.name} no longer contains {old!r}"
        text = text.replace(old, new, 1)
    return text


class Nginx:
    """``nginx -p DIR -c DIR/nginx.conf -g 'daemon off;'`` with a site config included in ``http {}``."""

    def __init__(self, keep_logs_in: Path):
        self.binary = nginx_or_skip()
        self.keep_logs_in = keep_logs_in
        # As root, nginx runs as nobody: its directory must be one nobody can reach (pytest's
        # tmp_path is private to root), so it is made under the system temp dir and removed at stop.
        self.directory = Path(tempfile.mkdtemp(prefix="op-proxy-nginx-"))
        self.process: subprocess.Popen | None = None

    @property
    def access_log(self) -> Path:
        return self.directory / "access.log"

    def start(self, site: str, ports: list[int]) -> Nginx:
        d = self.directory
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / name).mkdir(exist_ok=True)
        (d / "op-proxy.conf").write_text(site, encoding="utf-8")
        (d / "fastcgi_params").write_text("# the PHP app's requests never reach PHP in these tests\n")
        (d / "nginx.conf").write_text("\n".join([
            "worker_processes 1;", f"pid {d}/nginx.pid;", f"error_log {d}/error.log info;",
            "events { worker_connections 256; }",
            "http {",
            f"    client_body_temp_path {d}/client_body;", f"    proxy_temp_path {d}/proxy;",
            f"    fastcgi_temp_path {d}/fastcgi;", f"    uwsgi_temp_path {d}/uwsgi;", f"    scgi_temp_path {d}/scgi;",
            f"    access_log {d}/other.access.log;", f"    include {d}/op-proxy.conf;",
            "}", "",
        ]), encoding="utf-8")
        command = [self.binary, "-p", str(d), "-c", str(d / "nginx.conf"), "-g", "daemon off;"]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [d, *d.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *command]
        self._output = (d / "nginx.out").open("ab")
        self.process = subprocess.Popen(command, stdout=self._output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        waiting = list(ports)
        while waiting and time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=1).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.1)
        if waiting:
            raise RuntimeError(f"nginx did not listen on {waiting}:\n{self.log()}")
        return self

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in (self.directory / "nginx.out",
                                                                  self.directory / "error.log") if p.exists())

    def stop(self) -> None:
        terminate(self.process, getattr(self, "_output", None))
        self.keep_logs_in.mkdir(parents=True, exist_ok=True)
        for name in ("nginx.out", "error.log", "access.log", "op-proxy.conf"):
            if (self.directory / name).exists():
                shutil.copy(self.directory / name, self.keep_logs_in / name)
        shutil.rmtree(self.directory, ignore_errors=True)
