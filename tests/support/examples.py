"""The example apps of examples/clients, run as their READMEs say: their own process, their own port."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.support.peers import require_peer
from tests.support.processes import terminate
from tests.support.server import ROOT

EXAMPLES = ROOT / "examples" / "clients"


def npm_ci(folder: Path) -> None:
    """``npm ci`` in an example's folder, as its README says, unless its node_modules is up to date."""
    require_peer("Node.js and npm", bool(shutil.which("node") and shutil.which("npm")),
                 "needed for the Node example (Debian: apt-get install nodejs npm)")
    installed = folder / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= (folder / "package-lock.json").stat().st_mtime:
        return
    result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=folder,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


class ExampleApp:
    """One example's process; ``base`` answers once it is listening. Its output goes to a log file
    shown when it does not start."""

    def __init__(self, command: list[str], folder: Path, base: str, env: dict, log_path: Path):
        self.base = base
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(command, cwd=folder, env={**os.environ, **env},
                                        stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{command} exited with {self.process.returncode}:\n{self.log()}")
            try:
                httpx.get(base + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{command} did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process, self._log)
