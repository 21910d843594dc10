"""Everything a flow needs lives in the database, so any op-proxy process can finish it."""

from op_proxy.storage.database import Database

__all__ = ["Database"]
