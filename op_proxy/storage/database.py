"""The engines, and Alembic migrations run from code (``op-proxy db upgrade`` and at start).

Two engines on one database: the async one for the pages and the admin panel (the ORM), and a
synchronous one for the hot paths (``op_proxy.storage.operations``). An operation there is one
function that reads, prepares what it will write (tokens signed), then writes in one short
transaction (``Database.writing``). On MariaDB it runs in a worker thread: one hop per request
instead of one per statement, fetch and commit. On SQLite, a local file whose point queries take
microseconds, it runs on the event loop itself, and only when the file is busy (another process,
or this one's worker threads, writing) is it retried in a thread that may wait for the lock. Its
write-ahead log is copied back into the database file by a thread of its own (``WalCheckpointer``),
so that the disk flushes of a checkpoint never stop the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path

import orjson
from sqlalchemy import Insert, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import UpdateBase

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger("op_proxy.storage")

# A database that stops answering must cost a request seconds, not minutes: the request gets a
# 503 and /readyz says "not ready" (MariaDB; SQLite is a local file).
CONNECT_TIMEOUT = 3  # seconds to open a connection
QUERY_TIMEOUT = 10  # seconds for one statement: the client gives up reading (and the server stops it)
POOL_TIMEOUT = 5  # seconds to wait for a free pooled connection


def sqlite_file(url: str) -> str | None:
    """The path of a SQLite database kept in a file (None: another database, or SQLite in memory)."""
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    return database if database and database != ":memory:" and not database.startswith("file:") else None


def prepare_sqlite_directory(url: str) -> None:
    if (path := sqlite_file(url)) is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def json_text(value) -> str:
    """A JSON column's text (profiles, claims, audit details), by orjson: a fifth of json.dumps's
    time, and the hot paths read and write several per request. What orjson refuses (an integer
    beyond 64 bits in an upstream's claims, say) json.dumps writes, as it always did."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def json_value(text: str | bytes):
    """A JSON column's value: orjson, or json.loads for the NaN and Infinity json.dumps once wrote."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


JSON_CODEC = {"json_serializer": json_text, "json_deserializer": json_value}


def synchronous_url(url: str):
    """The same database through the synchronous driver: pysqlite for aiosqlite, PyMySQL for aiomysql."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    return parsed.set(drivername={"sqlite": "sqlite", "mysql": "mysql+pymysql"}.get(backend, backend))


class Database:
    def __init__(self, url: str):
        self.url = url
        prepare_sqlite_directory(url)
        backend = make_url(url).get_backend_name()
        self.is_sqlite = backend == "sqlite"
        options, sync_options = {}, {}
        if backend == "mysql":
            # MariaDB's max_statement_time stops a runaway statement on the server side too.
            init = f"SET SESSION max_statement_time={QUERY_TIMEOUT}"
            options = {"pool_pre_ping": True, "pool_recycle": 3600, "pool_timeout": POOL_TIMEOUT,
                       "connect_args": {"connect_timeout": CONNECT_TIMEOUT, "init_command": init}}
            sync_options = {"pool_pre_ping": True, "pool_recycle": 3600, "pool_timeout": POOL_TIMEOUT,
                            "connect_args": {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": QUERY_TIMEOUT,
                                             "write_timeout": QUERY_TIMEOUT, "init_command": init}}
        elif self.is_sqlite:
            sync_options = {"connect_args": {"check_same_thread": False}}
        # Statement parameters hold codes' digests, profiles and national IDs: never in an error text.
        self.engine = create_async_engine(url, hide_parameters=True, **JSON_CODEC, **options)
        self.sync_engine = create_engine(synchronous_url(url), hide_parameters=True, **JSON_CODEC, **sync_options)
        self.inline_engine = None
        self.checkpointer: WalCheckpointer | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _tune_sqlite)
            event.listen(self.sync_engine, "connect", _tune_sqlite)
            # One connection, used only by the event loop's thread, that never waits for a lock.
            self.inline_engine = create_engine(synchronous_url(url), hide_parameters=True, **JSON_CODEC,
                                               poolclass=StaticPool,
                                               connect_args={"check_same_thread": False})
            event.listen(self.inline_engine, "connect", _tune_sqlite_inline)
            if (path := sqlite_file(url)) is not None:
                self.checkpointer = WalCheckpointer(path)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time: the threads of this process queue on a lock rather than
        # meet in SQLite's busy handler, which sleeps for milliseconds between retries.
        self._write_lock = threading.Lock() if self.is_sqlite else nullcontext()
        self._inline = threading.local()
        from op_proxy.storage.caches import ProcessCaches

        self.caches = ProcessCaches(self)

    @asynccontextmanager
    async def transaction(self):
        async with self.sessions() as session, session.begin():
            yield session

    def session(self) -> AsyncSession:
        return self.sessions()

    def _inline_connection(self) -> InlineSqliteConnection:
        """The event loop's one SQLite connection, kept open between operations (opening a
        SQLAlchemy connection per request cost more than most of its statements)."""
        connection = getattr(self, "_kept_inline", None)
        if connection is None or connection.closed:
            connection = self._kept_inline = InlineSqliteConnection(self.inline_engine.connect())
        return connection

    # When another process is writing the SQLite file, the inline operation is tried again after
    # these pauses (seconds; the event loop serves other requests meanwhile): a write takes well
    # under a millisecond. Only then does it wait in a thread, on SQLite's busy handler.
    INLINE_RETRY_PAUSES = (0.0005, 0.001, 0.002, 0.004, 0.008)

    async def run(self, operation, *args):
        """``operation(connection, *args)``: what it wrote is committed when it returns, rolled back
        when it raises. An operation may run more than once on SQLite (again when the file was busy):
        everything before its ``writing`` block must be free of side effects."""
        if self.inline_engine is not None:
            for pause in (*self.INLINE_RETRY_PAUSES, None):
                try:
                    self._inline.active = True
                    return self._run_inline(operation, *args)
                except (OperationalError, SqliteBusy) as exc:
                    if not isinstance(exc, SqliteBusy) and not _is_busy(exc):
                        raise
                finally:
                    self._inline.active = False
                if pause is not None:
                    await asyncio.sleep(pause)
        return await asyncio.to_thread(self.run_sync, operation, *args)

    def run_sync(self, operation, *args):
        return self._run_on(self.sync_engine, operation, *args)

    def _run_inline(self, operation, *args):
        connection = self._inline_connection()
        sqlite = connection.sa.connection.dbapi_connection
        changes = sqlite.total_changes
        result = self._committed(connection, operation, *args)
        if self.checkpointer is not None and sqlite.total_changes != changes:
            self.checkpointer.wrote()
        return result

    @classmethod
    def _run_on(cls, engine, operation, *args):
        with engine.connect() as connection:
            return cls._committed(connection, operation, *args)

    @staticmethod
    def _committed(connection, operation, *args):
        try:
            result = operation(connection, *args)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        return result

    @contextmanager
    def writing(self, connection):
        """The write part of an operation: one transaction, committed before the block ends."""
        inline = getattr(self._inline, "active", False)
        if inline and not self._write_lock.acquire(blocking=False):
            raise SqliteBusy()  # a worker thread is writing: never block the event loop
        with nullcontext() if inline else self._write_lock:
            try:
                yield connection
                connection.commit()
            except BaseException:
                connection.rollback()
                raise
            finally:
                if inline:
                    self._write_lock.release()

    async def ping(self) -> None:
        """Raises unless the database answers, migrated, within the timeouts."""
        await self.run(lambda connection: connection.execute(text("SELECT version_num FROM alembic_version")).all())

    async def close(self) -> None:
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        await self.engine.dispose()
        await asyncio.to_thread(self.sync_engine.dispose)
        if self.inline_engine is not None:
            if (kept := getattr(self, "_kept_inline", None)) is not None:
                kept.close()
                self._kept_inline = None
            self.inline_engine.dispose()

    async def upgrade(self) -> None:
        await asyncio.to_thread(upgrade_schema, self.url)


def _tune_sqlite(dbapi_connection, _record):
    # WAL lets several op-proxy processes read while one writes; busy_timeout makes them wait
    # for each other instead of failing with "database is locked". synchronous=NORMAL is safe in WAL
    # (a power cut may lose the last commits, never corrupt) and saves an fsync per commit.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _tune_sqlite_inline(dbapi_connection, record):
    _tune_sqlite(dbapi_connection, record)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # busy: retried in a thread, the event loop never sleeps
    # Checkpoints are the checkpointer thread's: the event loop copies the log back itself only if
    # that thread has fallen this far behind (SQLite's own default would do it every 1,000 pages).
    cursor.execute(f"PRAGMA wal_autocheckpoint={WalCheckpointer.BACKSTOP_PAGES}")
    cursor.close()


class WalCheckpointer:
    """Copies SQLite's write-ahead log back into the database file, in a thread of its own.

    SQLite does it in whichever connection's commit finds the log over 1,000 pages: on the event
    loop's connection, every 70-odd token responses, a checkpoint that waits a few milliseconds on
    the disk (fdatasync of the log, then of the database) while no request is served. Here the
    thread checkpoints after every ``EVERY_WRITES`` inline transactions and at least once a second
    while any were written, PASSIVE (it never waits for, nor blocks, a reader or a writer; SQLite's
    sqlite3 module lets go of the GIL while it works). Durability is unchanged: the log is synced
    before the database is written, as in any checkpoint.

    Under a steady stream of writes the log may not be wholly copied between two of them, and SQLite
    starts it again from its beginning only when it is: ``BACKSTOP_PAGES`` bounds it (the event
    loop's own connection checkpoints beyond it). With several processes on one file each has its
    checkpointer; a checkpoint another is running makes this one skip its turn."""

    # A token response writes some 13 pages: a checkpoint copies a few thousand pages of log, each
    # page once however often it was written since the last one, and syncs the disk twice.
    EVERY_WRITES = 200
    EVERY_SECONDS = 1.0
    BACKSTOP_PAGES = 8000  # 32 MiB of log with 4 KiB pages

    def __init__(self, path: str):
        self.path = path
        self.checkpoints = 0  # done so far (for the tests and a curious operator)
        self._writes = 0
        self._due = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def wrote(self) -> None:
        """An inline transaction wrote something (called on the event loop: no waiting here)."""
        self._writes += 1
        if self._thread is None:
            self._start()
        if self._writes >= self.EVERY_WRITES:
            self._due.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stopping.is_set():
                self._thread = threading.Thread(target=self._run, name="op-proxy WAL checkpoints", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        connection = sqlite3.connect(self.path, timeout=0, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")  # as every connection of ours: synced at checkpoints
            while not self._stopping.is_set():
                self._due.wait(self.EVERY_SECONDS)
                self._due.clear()
                if self._writes:
                    self._writes = 0
                    self.checkpoint(connection)
        finally:
            connection.close()

    def checkpoint(self, connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.OperationalError as error:  # busy: another process's checkpoint; its turn
            log.debug("WAL checkpoint skipped: %s", error)
        except sqlite3.Error as error:  # the thread goes on; the event loop's backstop still bounds the log
            log.warning("WAL checkpoint failed: %s", type(error).__name__)

    def stop(self) -> None:
        self._stopping.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(10)


class InlineSqliteConnection:
    """The inline SQLite connection as operations see it: a SQLAlchemy ``Connection`` whose
    ``execute`` runs the hot paths' prepared statements (module constants, run again and again)
    straight on the sqlite3 cursor: compiled once with their bind and result processors, the same
    SQL and the same values SQLAlchemy would send, without the tens of microseconds its execution
    context costs per statement. Anything else, and any statement that fails (so that the error is
    SQLAlchemy's, with its parameters hidden), goes through SQLAlchemy itself."""

    CACHE_LIMIT = 256

    def __init__(self, connection):
        self.sa = connection
        self.dialect = connection.dialect
        self._plans: dict = {}
        self._seen: set = set()

    def __getattr__(self, name):
        return getattr(self.sa, name)

    @property
    def closed(self) -> bool:
        return self.sa.closed

    def execute(self, statement, parameters=None):
        plan = self._plan(statement, parameters)
        if plan is None:
            return self.sa.execute(statement, parameters)
        if not self.sa.in_transaction():
            self.sa.begin()  # what SQLAlchemy's autobegin does, so that commit() commits
        cursor = self.sa.connection.dbapi_connection.cursor()
        try:
            cursor.execute(plan.sql, plan.values(parameters or {}))
        except Exception:  # noqa: BLE001 - sqlite3's error, raised again as SQLAlchemy's below
            cursor.close()
            return self.sa.execute(statement, parameters)
        return _Rows(cursor, plan)

    def _plan(self, statement, parameters):
        if not isinstance(statement, (Select, UpdateBase)) or (parameters is not None
                                                              and not isinstance(parameters, dict)):
            return None
        key = (statement, tuple(parameters) if parameters else ())
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        if key not in self._seen:  # a statement built for one request: SQLAlchemy's own cache serves it
            if len(self._seen) > self.CACHE_LIMIT:
                self._seen.clear()
            self._seen.add(key)
            return None
        plan = _Plan.of(statement, parameters, self.dialect)
        if len(self._plans) > self.CACHE_LIMIT:
            self._plans.clear()
        self._plans[key] = plan or False
        return plan or None


class _Plan:
    """A statement compiled for pysqlite: its SQL, how to turn parameters into the positional
    values (bind processors: JSON, booleans) and rows into mappings (result processors)."""

    def __init__(self, compiled, dialect, parameter_names):
        self.sql = compiled.string
        processors = compiled._bind_processors
        # Where each value comes from, worked out once (a plan serves one set of parameter names):
        # what construct_params does for every execution, as it does it.
        self.slots = []
        for name in compiled.positiontup:
            bind, process = compiled.binds[name], processors.get(name)
            source = bind.key if bind.key in parameter_names else name if name in parameter_names else None
            self.slots.append((source, bind.value, process))
        self.columns = [(column[0], column[3]._cached_result_processor(dialect, None))
                        for column in compiled._result_columns]
        self.keys = [key for key, _process in self.columns]
        self.row_type = type("Row", (_Row,), {"__slots__": (), "_keys": {key: i for i, key in enumerate(self.keys)}})

    @classmethod
    def of(cls, statement, parameters, dialect):
        keys = list(parameters) if isinstance(statement, Insert) and parameters else None
        compiled = statement.compile(dialect=dialect, column_keys=keys)
        unusual = ("insert_prefetch", "update_prefetch", "postfetch", "effective_returning",
                   "literal_execute_params", "post_compile_params")
        if compiled.positiontup is None or any(getattr(compiled, name, None) for name in unusual):
            return None  # defaults computed in Python, RETURNING, expanding IN (...): SQLAlchemy's work
        if compiled.escaped_bind_names or getattr(compiled, "_collected_params", None) or any(
                bind.callable for bind in compiled.binds.values()):
            return None  # names SQLite cannot take, values computed per execution: SQLAlchemy's work
        return cls(compiled, dialect, set(parameters or ()))

    def values(self, parameters: dict) -> tuple:
        return tuple([(constant if source is None else parameters[source]) if process is None
                      else process(constant if source is None else parameters[source])
                      for source, constant, process in self.slots])


class _Row(tuple):
    """A row as SQLAlchemy's ``Row`` is read: by position, by attribute, ``._mapping``."""

    __slots__ = ()
    _keys: dict = {}

    def __getattr__(self, name):
        try:
            return self[self._keys[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict:
        return dict(zip(self._keys, self, strict=False))


class _Rows:
    """A result read as operations read SQLAlchemy's: rows (``first``, ``one``, ``all``, iteration,
    attributes), ``mappings()``, ``scalar``/``scalars()``, ``rowcount``."""

    def __init__(self, cursor, plan: _Plan, shape: str = "row"):
        self.cursor, self.plan, self.shape = cursor, plan, shape
        self.rowcount = cursor.rowcount
        if cursor.description is None:  # INSERT, UPDATE, DELETE: nothing to fetch
            cursor.close()

    def _shaped(self, row):
        values = [process(value) if process is not None else value
                  for (_key, process), value in zip(self.plan.columns, row, strict=True)]
        if self.shape == "mapping":
            return dict(zip(self.plan.keys, values, strict=True))
        if self.shape == "scalar":
            return values[0]
        return self.plan.row_type(values)

    def mappings(self):
        self.shape = "mapping"
        return self

    def scalars(self):
        self.shape = "scalar"
        return self

    def _fetch_all(self) -> list:
        if self.cursor.description is None:
            return []
        rows = self.cursor.fetchall()
        self.cursor.close()
        return [self._shaped(row) for row in rows]

    def first(self):
        if self.cursor.description is None:
            return None
        row = self.cursor.fetchone()
        self.cursor.close()
        return None if row is None else self._shaped(row)

    def all(self) -> list:
        return self._fetch_all()

    fetchall = all

    def __iter__(self):
        return iter(self._fetch_all())

    def one_or_none(self):
        rows = self._fetch_all()
        if len(rows) > 1:
            from sqlalchemy.exc import MultipleResultsFound

            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return rows[0] if rows else None

    def one(self):
        row = self.one_or_none()
        if row is None:
            from sqlalchemy.exc import NoResultFound

            raise NoResultFound("No row was found when one was required")
        return row

    def scalar(self):
        self.shape = "scalar"
        return self.first()

    def scalar_one(self):
        self.shape = "scalar"
        return self.one()

    def scalar_one_or_none(self):
        self.shape = "scalar"
        return self.one_or_none()


class SqliteBusy(Exception):
    """The SQLite file is being written by someone else: retry where waiting is allowed."""


def _is_busy(error: OperationalError) -> bool:
    words = str(error.orig)
    return "locked" in words or "busy" in words


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    return config


def upgrade_schema(url: str, revision: str = "head") -> None:
    from alembic import command

    prepare_sqlite_directory(url)
    command.upgrade(alembic_config(url), revision)


__all__ = ["Database"]
