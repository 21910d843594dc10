"""Signing keys: created on first start, rotated without downtime."""

from op_proxy.keys.keyring import Keyring, SigningKey

__all__ = ["Keyring", "SigningKey"]
