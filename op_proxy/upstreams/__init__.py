"""Upstream identity providers: one small connector per kind behind one interface."""

from op_proxy.upstreams.base import Connector, Identity, LoginFailed, LoginStart
from op_proxy.upstreams.registry import build_connectors

__all__ = ["Connector", "Identity", "LoginFailed", "LoginStart", "build_connectors"]
