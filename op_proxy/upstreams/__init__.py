"""Upstream identity providers: one small connector per kind behind one interface."""

from op_proxy.upstreams.base import (
    CallbackConnector,
    Connector,
    ConnectorData,
    Identity,
    LoggingOutConnector,
    LoginFailed,
    LoginHints,
    PasswordConnector,
    RefreshingConnector,
)
from op_proxy.upstreams.registry import build_connectors

__all__ = ["CallbackConnector", "Connector", "ConnectorData", "Identity", "LoggingOutConnector", "LoginFailed",
           "LoginHints", "PasswordConnector", "RefreshingConnector", "build_connectors"]
