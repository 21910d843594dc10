"""Builds one connector per configured upstream."""

from __future__ import annotations

from op_proxy.upstreams.local import LocalConnector
from op_proxy.upstreams.oidc import OidcConnector
from op_proxy.upstreams.thaid import ThaidConnector

CONNECTOR_KINDS = {"local": LocalConnector, "oidc": OidcConnector, "thaid": ThaidConnector}


def build_connectors(upstreams: dict, *, issuer: str, http) -> dict:
    return {name: CONNECTOR_KINDS[settings.kind](settings, issuer=issuer, http=http)
            for name, settings in upstreams.items()}
