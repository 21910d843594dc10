"""The real programs the stories run against beside op-proxy: Node.js and openid-client, MariaDB,
PHP, Redis, nginx, Chromium.

On a developer's machine a missing one skips the tests that need it, saying what to install; under
``CI=true`` (the pipeline installs every one) it fails them instead, so a green pipeline cannot mean
"nothing ran".
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_peer(name: str, available: bool, reason: str) -> None:
    """Go on if ``name`` is ``available``; otherwise skip with ``reason`` (fail under CI=true)."""
    if available:
        return
    message = f"{name}: {reason}"
    if in_ci():
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)
