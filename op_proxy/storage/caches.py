"""What every process keeps in memory: the clients (read on every token, introspection and
authorization request, changed rarely).

How fast a change takes effect:
- made by this process (the admin panel, a start-up sync): at once — every committed statement
  that writes the ``clients`` table empties the cache;
- made by another process (the CLI, another worker, an operator's SQL): within
  ``CHECK_EVERY`` seconds — database triggers bump ``cache_versions`` (migration 0015) on any
  change, and the counter is read at most that often.
Tokens are never cached: a revoked token is refused at once, everywhere.
"""

from __future__ import annotations

import re
import threading
import time

from sqlalchemy import bindparam, event, select

from op_proxy.storage.models import CacheVersion, Client

CHECK_EVERY = 2.0  # seconds; the documented bound for a change made by another process

CLIENTS = Client.__table__
VERSIONS = CacheVersion.__table__
_WRITES_CLIENTS = re.compile(r"^\s*(INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+[`\"]?clients\b", re.IGNORECASE)
_FLAG = "op_proxy_wrote_clients"
READ_VERSION = select(VERSIONS.c.version).where(VERSIONS.c.name == "clients")
READ_CLIENT = select(CLIENTS).where(CLIENTS.c.client_id == bindparam("client_id"))


class ProcessCaches:
    def __init__(self, db):
        self._clients: dict[str, Client] = {}
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._generation = 0  # a load that raced with a change must not store what it read
        self._lock = threading.Lock()
        for engine in (db.engine.sync_engine, db.sync_engine, db.inline_engine):
            if engine is None:
                continue
            event.listen(engine, "before_cursor_execute", self._note_write)
            event.listen(engine, "commit", self._after_commit)
            event.listen(engine, "rollback", self._after_rollback)

    # -- in-process invalidation ------------------------------------------------------------------

    @staticmethod
    def _note_write(connection, _cursor, statement, _parameters, _context, _executemany):
        if _WRITES_CLIENTS.match(statement):
            connection.info[_FLAG] = True

    def _after_commit(self, connection):
        if connection.info.pop(_FLAG, False):
            self.forget_clients()

    @staticmethod
    def _after_rollback(connection):
        connection.info.pop(_FLAG, None)

    def forget_clients(self) -> None:
        with self._lock:
            self._clients = {}
            self._generation += 1

    # -- reading --------------------------------------------------------------------------------------

    def cached_client(self, client_id: str) -> Client | None:
        """The kept client, unless it is time to compare the version counter (then: None, ask the database)."""
        if time.monotonic() - self._checked_at >= CHECK_EVERY:
            return None
        return self._clients.get(client_id)

    def load_client(self, connection, client_id: str) -> Client | None:
        """In a worker thread, inside an operation's transaction: compare the version if due, then read."""
        generation = self._generation
        if time.monotonic() - self._checked_at >= CHECK_EVERY:
            version = connection.execute(READ_VERSION).scalar()
            with self._lock:
                if version != self._version:
                    self._clients = {}
                    self._generation += 1
                    generation = self._generation
                    self._version = version
                self._checked_at = time.monotonic()
        kept = self._clients.get(client_id)
        if kept is not None:
            return kept
        row = connection.execute(READ_CLIENT, {"client_id": client_id}).mappings().first()
        if row is None:
            return None  # unknown clients are not remembered: one made a moment ago works at once
        client = Client(**row)
        with self._lock:
            if generation == self._generation:
                self._clients[client_id] = client
        return client
