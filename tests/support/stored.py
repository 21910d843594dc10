"""What op-proxy has stored, looked at as op-proxy looks at it: its models (op_proxy.storage.models)
through SQLAlchemy Core, on the synchronous engine op-proxy opens for the same URL (pysqlite or
PyMySQL). So a story that checks a row, or moves a code's expiry into the past, reads the same on
SQLite and MariaDB. Model: node-oidc-provider's test helper reads sessions through its adapter.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.engine import Row
from sqlalchemy.sql import Executable

from op_proxy.storage.database import synchronous_url


def database_url_of(server) -> str:
    """The database a running op-proxy uses: OP_PROXY_DATABASE_URL in its environment, otherwise
    ``[database] url`` of its config file."""
    url = server.env.get("OP_PROXY_DATABASE_URL")
    if url:
        return url
    return tomllib.loads(Path(server.config_path).read_text(encoding="utf-8"))["database"]["url"]


def _url(database) -> str:
    return database if isinstance(database, str) else database_url_of(database)


@contextmanager
def connected(database) -> Iterator[Connection]:
    """One transaction on ``database`` (a server, or a database URL), committed when the block ends."""
    engine = create_engine(synchronous_url(_url(database)))
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def stored(database, statement: Executable) -> list[Row]:
    """The rows a SELECT finds."""
    with connected(database) as connection:
        return list(connection.execute(statement))


def stored_values(database, statement: Executable) -> list:
    """The first column of the rows a SELECT finds."""
    return [row[0] for row in stored(database, statement)]


def changed(database, statement: Executable) -> int:
    """Run an UPDATE or DELETE; how many rows it changed."""
    with connected(database) as connection:
        return connection.execute(statement).rowcount


def table_names(database) -> set[str]:
    with connected(database) as connection:
        return set(inspect(connection).get_table_names())

