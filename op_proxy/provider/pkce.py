"""RFC 7636 (PKCE), S256 only: ``plain`` is refused (RFC 9700 §2.1.1)."""

from __future__ import annotations

import re

from op_proxy.security import base64url_sha256, constant_time_equals

# RFC 7636 §4.1 / §4.2: 43–128 characters of [A-Z a-z 0-9 - . _ ~]
_PKCE_VALUE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def is_valid_pkce_value(value: str) -> bool:
    return bool(_PKCE_VALUE.match(value))


def verifier_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge."""
    return is_valid_pkce_value(verifier) and constant_time_equals(base64url_sha256(verifier), challenge)
