"""Ending the peer processes the tests start (op-proxy, php -S, oidc-provider)."""

from __future__ import annotations

import subprocess


def terminate(process: subprocess.Popen | None, log_file=None) -> None:
    """SIGTERM, up to ten seconds for a clean exit, then SIGKILL; and close its log."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process is not None and log_file is not None:
        log_file.close()
