"""Fixtures: a real op-proxy (hypercorn, own process) on SQLite or MariaDB, and people at browsers.

``server`` is shared by the tests of one module (starting a process costs a second or two);
``make_server`` starts dedicated ones for tests that need their own config, database or restarts.
"""

from __future__ import annotations

import pytest

from tests.support.databases import MariaDbDatabase, sqlite_url
from tests.support.person import Person
from tests.support.server import OpProxyServer, free_port, write_config


class ServerFactory:
    def __init__(self, directory, database_url: str):
        self.directory, self.database_url = directory, database_url
        self.issuer_port = free_port()
        self.servers: list[OpProxyServer] = []

    def __call__(self, clients=None, extra: str = "", env: dict | None = None) -> OpProxyServer:
        """All processes of one factory share a config, so one issuer, database and keys directory;
        the first listens on the issuer's port, any further one (another process behind the same
        load balancer) on a port of its own."""
        config = write_config(self.directory, port=self.issuer_port, database_url=self.database_url,
                              clients=clients, extra=extra)
        listen_port = self.issuer_port if not self.servers else free_port()
        server = OpProxyServer(config, listen_port, env={**(env or {}), "OP_PROXY_SERVER_PORT": str(listen_port)})
        server.issuer = f"http://127.0.0.1:{self.issuer_port}"
        self.servers.append(server)
        return server.start()

    def stop_all(self):
        for server in self.servers:
            server.stop()


def database_for(kind: str, directory):
    if kind == "mariadb":
        database = MariaDbDatabase()
        return database.url, database.drop
    return sqlite_url(directory), lambda: None


@pytest.fixture
def database_url(request, tmp_path):
    """SQLite by default; parametrize with ``["sqlite", "mariadb"]`` and ``indirect=True`` to run
    a test on a fresh MariaDB database too."""
    url, drop = database_for(getattr(request, "param", "sqlite"), tmp_path)
    yield url
    drop()


@pytest.fixture
def make_server(tmp_path, database_url):
    factory = ServerFactory(tmp_path, database_url)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("op-proxy")
    factory = ServerFactory(directory, sqlite_url(directory))
    yield factory()
    factory.stop_all()


@pytest.fixture
def person(server):
    someone = Person(server.issuer)
    yield someone
    someone.close()
