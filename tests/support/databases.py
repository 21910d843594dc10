"""The databases the suite runs on: SQLite always, MariaDB when it answers (required when CI=true)."""

from __future__ import annotations

import os
import secrets

from tests.support.peers import require_peer

MARIADB_HOST = os.environ.get("OP_PROXY_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("OP_PROXY_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("OP_PROXY_TEST_MARIADB_USER", "root")
MARIADB_PASSWORD = os.environ.get("OP_PROXY_TEST_MARIADB_PASSWORD", "")


def _connect(database: str | None = None):
    import pymysql

    return pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER,
                           password=MARIADB_PASSWORD, database=database, connect_timeout=3, autocommit=True)


def mariadb_or_skip():
    """A connection to the MariaDB server, or a skip saying why (a failure under CI=true)."""
    try:
        return _connect()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "not here"
        require_peer("MariaDB", False, f"not reachable at {MARIADB_HOST}:{MARIADB_PORT} as {MARIADB_USER}: {exc}")


class MariaDbDatabase:
    """A fresh, empty database for one test, dropped afterwards."""

    def __init__(self):
        self.server = mariadb_or_skip()
        self.name = "op_proxy_test_" + secrets.token_hex(6)
        with self.server.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.url = (f"mysql+aiomysql://{MARIADB_USER}:{MARIADB_PASSWORD}@{MARIADB_HOST}:{MARIADB_PORT}/"
                    f"{self.name}?charset=utf8mb4")

    def drop(self):
        with self.server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        self.server.close()


def sqlite_url(directory) -> str:
    return f"sqlite+aiosqlite:///{directory}/op-proxy.sqlite3"
