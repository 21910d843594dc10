"""The ``sub`` a client sees (OIDC Core §8): the account's own random id, or, for a client that asks
for ``pairwise``, one derived for its sector so that two clients cannot link a person. Never the
national ID: accounts are keyed on (upstream, upstream subject) and get a random ``sub``."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import urlsplit


def sector_identifier(client) -> str:
    """OIDC Core §8.1: without a sector_identifier_uri, the host of the (single-host) redirect URIs.

    A native app whose redirect URIs are all private-use schemes (``com.example.app:/cb``, RFC 8252
    §7.1) has no host: its sector is the client itself, as for a client with several hosts."""
    hosts = {urlsplit(uri).hostname for uri in client.redirect_uris}
    return hosts.pop() if len(hosts) == 1 and None not in hosts else client.client_id


def subject_for(account_sub: str, client, salt: bytes) -> str:
    if client.subject_type != "pairwise":
        return account_sub
    digest = hashlib.sha256(sector_identifier(client).encode() + b"\0" + account_sub.encode() + b"\0" + salt).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()
