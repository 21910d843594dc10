"""The async engine, and Alembic migrations run from code (``op-proxy db upgrade`` and at start)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def prepare_sqlite_directory(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class Database:
    def __init__(self, url: str):
        self.url = url
        prepare_sqlite_directory(url)
        is_sqlite = make_url(url).get_backend_name() == "sqlite"
        options = {"pool_pre_ping": True} if not is_sqlite else {}
        options["hide_parameters"] = True  # an error's message never carries what a person or upstream sent
        if make_url(url).get_backend_name() == "mysql":
            options["pool_recycle"] = 3600
        self.engine = create_async_engine(url, **options)
        if is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _tune_sqlite)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self):
        async with self.sessions() as session, session.begin():
            yield session

    def session(self) -> AsyncSession:
        return self.sessions()

    async def close(self) -> None:
        await self.engine.dispose()

    async def upgrade(self) -> None:
        await asyncio.to_thread(upgrade_schema, self.url)


def _tune_sqlite(dbapi_connection, _record):
    # WAL lets several op-proxy processes read while one writes; busy_timeout makes them wait
    # for each other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


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
