"""What every request handler needs, built once at start-up and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from quart import current_app

from op_proxy.config import Settings
from op_proxy.keys import Keyring
from op_proxy.storage import Database
from op_proxy.tokens.minting import TokenMinter
from op_proxy.upstreams.base import Connector


@dataclass
class Services:
    settings: Settings
    db: Database
    keyring: Keyring
    minter: TokenMinter
    connectors: dict[str, Connector]
    http: httpx.AsyncClient
    # Who finishes each kind of sign-in (signin.flow.front_doors), named by create_app.
    front_doors: dict = field(default_factory=dict)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        from op_proxy.upstreams import build_connectors

        keyring = keyring_for(settings)
        # One pool for every outgoing request; redirects are never followed (a token or user-handler
        # endpoint that redirects is misconfigured or hostile).
        http = httpx.AsyncClient(follow_redirects=False, timeout=10, headers={"User-Agent": "op-proxy"})
        connectors = build_connectors(settings.upstreams, issuer=settings.issuer, http=http)
        return cls(settings, Database(settings.database_url), keyring, TokenMinter(settings, keyring), connectors, http)

    def endpoint(self, path: str) -> str:
        return self.settings.issuer + path


def keyring_for(settings: Settings) -> Keyring:
    lifetimes = settings.tokens
    return Keyring(
        settings.keys.directory, algorithm=settings.keys.algorithm, rsa_bits=settings.keys.rsa_bits,
        publish_ahead=settings.keys.publish_ahead,
        max_token_lifetime=max(lifetimes.id_token_lifetime, lifetimes.access_token_lifetime),
    )


def services() -> Services:
    return current_app.extensions["op_proxy"]
