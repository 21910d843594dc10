"""On SQLite the hot paths' statements run straight on the sqlite3 cursor (op_proxy.storage.database):
whatever shape an operation reads a result in, it must read what SQLAlchemy itself would give, and
a failing statement must fail as SQLAlchemy's error (what the 503 pages and the retries expect)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from op_proxy.storage.database import Database, upgrade_schema
from op_proxy.storage.models import AuditEvent, Client

EVENTS = AuditEvent.__table__
CLIENTS = Client.__table__
ADD_EVENT = insert(EVENTS)
# The literals (50, 1000) are bound parameters SQLAlchemy fills in itself.
EVENTS_OF = select(EVENTS.c.id, EVENTS.c.event, EVENTS.c.detail, EVENTS.c.client_id, EVENTS.c.at).where(
    EVENTS.c.event == bindparam("event"), EVENTS.c.at >= 50).order_by(EVENTS.c.id)
RENAME = update(EVENTS).where(EVENTS.c.event == bindparam("old"), EVENTS.c.at < 1000).values(event=bindparam("new"))
ENABLED = select(CLIENTS.c.client_id, CLIENTS.c.enabled, CLIENTS.c.redirect_uris).where(
    CLIENTS.c.client_id == bindparam("client_id"))
ADD_CLIENT = insert(CLIENTS)


def every_shape(connection, event: str):
    rows = connection.execute(EVENTS_OF, {"event": event})
    first = connection.execute(EVENTS_OF, {"event": event}).first()
    return {
        "all": [tuple(row) for row in rows.all()],
        "attributes": (first.event, first.detail, first.client_id) if first else None,
        "mapping": dict(first._mapping) if first else None,
        "mappings": [dict(m) for m in connection.execute(EVENTS_OF, {"event": event}).mappings().all()],
        "scalar": connection.execute(EVENTS_OF, {"event": event}).scalar(),
        "scalars": connection.execute(EVENTS_OF, {"event": event}).scalars().all(),
        "iterated": [row.detail for row in connection.execute(EVENTS_OF, {"event": event})],
        "none": connection.execute(EVENTS_OF, {"event": "nothing"}).mappings().first(),
        "client": tuple(connection.execute(ENABLED, {"client_id": "app"}).one()),
    }


def write(connection, event: str):
    for number in range(3):
        connection.execute(ADD_EVENT, {"event": event, "outcome": "success", "at": 100 + number,
                                       "detail": {"n": number, "thai": "ทดสอบ"} if number else None})
    return connection.execute(RENAME, {"old": event, "new": event + "-renamed"}).rowcount


def add_client(connection):
    connection.execute(ADD_CLIENT, {"client_id": "app", "name": "App", "redirect_uris": ["https://a.example/cb"],
                                    "post_logout_redirect_uris": [], "allowed_scopes": ["openid"],
                                    "allowed_upstreams": [], "created_at": 1, "updated_at": 1,
                                    "token_endpoint_auth_method": "none", "enabled": True})


@pytest.fixture
def database(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/op-proxy.sqlite3"
    upgrade_schema(url)
    db = Database(url)
    yield db
    asyncio.run(db.close())


def test_the_inline_path_reads_and_writes_what_sqlalchemy_does(database):
    async def story():
        await database.run(add_client)
        inline = []
        for round_ in range(3):  # a statement goes the direct way from its second use on
            inline.append(await database.run(write, f"inline-{round_}"))
        threaded = [await asyncio.to_thread(database.run_sync, write, "threaded")]
        assert inline == [3, 3, 3] and threaded == [3]
        seen_inline = [await database.run(every_shape, "inline-2-renamed") for _ in range(3)]
        seen_by_sqlalchemy = await asyncio.to_thread(database.run_sync, every_shape, "inline-2-renamed")
        return seen_inline, seen_by_sqlalchemy

    seen_inline, seen_by_sqlalchemy = asyncio.run(story())
    assert seen_inline[0] == seen_inline[1] == seen_inline[2]
    ours = seen_inline[2]
    assert ours == seen_by_sqlalchemy
    direct = database._inline_connection()._plans  # the statements that took the direct way
    assert direct.get((EVENTS_OF, ("event",))) and direct.get((RENAME, ("old", "new")))
    assert ours["attributes"] == ("inline-2-renamed", None, None)
    assert [row[-1] for row in ours["all"]] == [100, 101, 102]
    assert ours["iterated"] == [None, {"n": 1, "thai": "ทดสอบ"}, {"n": 2, "thai": "ทดสอบ"}]
    assert ours["client"] == ("app", True, ["https://a.example/cb"])  # booleans and JSON as SQLAlchemy reads them
    assert ours["none"] is None


def test_a_failing_statement_fails_as_sqlalchemys_error_and_changes_nothing(database):
    async def story():
        await database.run(add_client)
        await database.run(add_client)  # the second use of the statement: the direct way
        return await database.run(lambda connection: connection.execute(ENABLED, {"client_id": "app"}).all())

    with pytest.raises(IntegrityError) as refused:
        asyncio.run(story())
    assert "[SQL parameters hidden" in str(refused.value)  # never a redirect URI or secret in an error text
    count = asyncio.run(database.run(lambda c: len(c.execute(ENABLED, {"client_id": "app"}).all())))
    assert count == 1


def test_a_write_that_finds_the_file_busy_is_done_once_the_other_writer_is_gone_signing_once(database, tmp_path):
    """Another op-proxy process is writing the same SQLite file: the operation waits its turn without
    blocking the event loop, and what it signed before its write (the costly part) is signed once."""
    import sqlite3
    import threading

    from op_proxy.storage.operations import sign_once

    signatures = []
    sign = sign_once(lambda event: signatures.append(event) or f"signed {event}")

    def operation(connection):
        signed = sign("busy-test")
        with database.writing(connection):
            connection.execute(ADD_EVENT, {"event": signed, "outcome": "success", "at": 100, "detail": None})
        return signed

    database.run_sync(lambda connection: None)  # this process has the file open (in WAL) already
    other_process = sqlite3.connect(f"{tmp_path}/op-proxy.sqlite3", isolation_level=None, check_same_thread=False)
    other_process.execute("BEGIN IMMEDIATE")  # holds the write lock
    threading.Timer(0.05, other_process.execute, ("COMMIT",)).start()

    async def story():
        ticks = 0

        async def event_loop_keeps_serving():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        others = asyncio.create_task(event_loop_keeps_serving())
        try:
            return await database.run(operation), ticks
        finally:
            others.cancel()

    result, ticks = asyncio.run(story())
    other_process.close()
    assert result == "signed busy-test"
    assert signatures == ["busy-test"]
    assert ticks > 0  # other requests were served while this one waited
    assert database.run_sync(lambda c: c.execute(EVENTS_OF, {"event": "signed busy-test"}).all())


def test_the_write_ahead_log_is_copied_into_the_database_by_a_thread_never_by_the_event_loop(tmp_path, monkeypatch):
    """SQLite copies its log back into the database file in whichever connection's commit finds it
    over 1,000 pages, waiting on the disk: on the event loop's connection no request was served
    meanwhile. The checkpointer thread does it instead, and the rows are then in the file itself."""
    import sqlite3
    import time

    from op_proxy.storage.database import WalCheckpointer

    monkeypatch.setattr(WalCheckpointer, "EVERY_WRITES", 10_000)  # the thread waits for a signal...
    monkeypatch.setattr(WalCheckpointer, "EVERY_SECONDS", 60.0)  # ...that does not come while we write
    path = tmp_path / "op-proxy.sqlite3"
    upgrade_schema(f"sqlite+aiosqlite:///{path}")
    database = Database(f"sqlite+aiosqlite:///{path}")
    page = "ข้อมูล" * 170  # some 6 KB of JSON (Thai is escaped): each event takes pages of its own

    def add_event(connection, number):
        with database.writing(connection):
            connection.execute(ADD_EVENT, {"event": f"bulk-{number}", "outcome": "success", "at": number,
                                           "detail": {"page": page}})

    async def write(count, start=0):
        for number in range(start, start + count):
            await database.run(add_event, number)

    try:
        asyncio.run(write(300))  # each write dirties the table, its overflow and three indexes: 1,100+ pages of log
        frames = (path.with_name(path.name + "-wal").stat().st_size - 32) // (4096 + 24)
        assert frames > 1_100  # nobody on the event loop checkpointed at 1,000 (SQLite's default)
        assert database.checkpointer.checkpoints == 0

        database.checkpointer.EVERY_WRITES = 1  # the next write signals the thread
        asyncio.run(write(1, start=300))
        deadline = time.monotonic() + 10
        while database.checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert database.checkpointer.checkpoints == 1
        # The database file alone, read without the log: every row is in it now.
        file_only = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            assert file_only.execute("SELECT count(*) FROM audit_events WHERE event LIKE 'bulk-%'").fetchone() == (301,)
        finally:
            file_only.close()
    finally:
        asyncio.run(database.close())
