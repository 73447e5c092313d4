"""The async engine and sessions, from one SQLAlchemy URL.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) the
production store. On SQLite every connection runs in WAL mode with a busy
timeout, and write transactions start with BEGIN IMMEDIATE so that two
writers queue up instead of failing with "database is locked" when one
upgrades its read lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.driver import PgDriver, Row, SessionTx, SqliteDriver, Tx

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/zonehost.sqlite3"
_WRITE = "zonehost_write"


class DatabaseError(Exception):
    """The database cannot be used (bad URL, unreachable, not migrated)."""


@dataclass(frozen=True, slots=True)
class Database:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # SQLite has one writer at a time: writers of this process queue here
    # rather than in SQLite's busy handler, which sleeps and polls.
    _write_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)
    # Plain driver connections for the hot paths (storage.driver); None for
    # an in-memory SQLite store, which only the engine's connection sees.
    _driver: SqliteDriver | PgDriver | None = field(default=None, repr=False, compare=False)
    # transaction(queue=key): writers of this process that would wait for
    # the same row lock queue here instead, holding no connection.
    _queues: dict[str, _Queue] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; rolled back at the end."""
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: committed on success, rolled back on error."""
        async with self._serialized(), self.sessionmaker() as session:
            await session.connection(execution_options=cast(Any, {_WRITE: True}))
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def transaction(self, queue: str | None = None) -> AsyncIterator[Tx]:
        """One write transaction on a plain driver connection (storage.driver):
        committed on success, rolled back on error. Same guarantees as
        `write()`, for SQL that does not need the ORM.

        `queue` names what the transaction will lock (e.g. a zone): on
        PostgreSQL, transactions of this process with the same name run one
        after the other, so that they wait here rather than in the database
        (each holding a pooled connection and a backend, all woken at every
        commit). SQLite's write lock already makes every writer queue."""
        if self._driver is None:
            async with self.write() as session:
                yield SessionTx(session)
            return
        if queue is None or not self.is_postgres:
            async with self._serialized(), self._driver.transaction() as tx:
                yield tx
            return
        async with self._queued(queue), self._driver.transaction() as tx:
            yield tx

    @asynccontextmanager
    async def statements(self, queue: str) -> AsyncIterator[Tx | None]:
        """On PostgreSQL, a Tx whose statements each commit on their own (no
        transaction: `tx.in_transaction` is False), queued by `queue` as
        `transaction()` is; None elsewhere (use `transaction()`)."""
        if not isinstance(self._driver, PgDriver):
            yield None
            return
        async with self._queued(queue), self._driver.statements() as tx:
            yield tx

    @asynccontextmanager
    async def _queued(self, queue: str) -> AsyncIterator[None]:
        entry = self._queues.get(queue)
        if entry is None:
            entry = self._queues[queue] = _Queue()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if not entry.users:
                del self._queues[queue]

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """One read statement (storage.driver SQL) outside any transaction."""
        if self._driver is None:
            async with self.read() as session:
                return await SessionTx(session).fetch(sql, *args)
        return await self._driver.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    @property
    def sql(self) -> Tx:
        """Value conversions (`array`, `time`, `json_out`...) for this backend, outside a Tx."""
        return _CONVERSIONS[self.is_postgres]

    @asynccontextmanager
    async def _serialized(self) -> AsyncIterator[None]:
        if not self.is_sqlite:
            yield
            return
        async with self._write_lock:
            yield

    async def ping(self) -> None:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (OSError, DBAPIError, OperationalError) as exc:
            raise DatabaseError(f"cannot reach the database {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
        await self.engine.dispose()


def connect(url: str | None = None, *, pool_size: int = 10, echo: bool = False) -> Database:
    """Build the engine for `url` (default: the SQLite file under ./var/)."""
    url = url or DEFAULT_DATABASE_URL
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise DatabaseError(f"invalid database URL: {exc}") from exc
    kwargs: dict[str, Any] = {"echo": echo}
    driver: SqliteDriver | PgDriver | None = None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            driver = SqliteDriver(parsed.database)
        kwargs["connect_args"] = {"timeout": 30}
    elif parsed.get_backend_name() == "postgresql":
        if parsed.get_driver_name() != "asyncpg":
            raise DatabaseError("PostgreSQL URLs must use asyncpg: postgresql+asyncpg://...")
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        driver = PgDriver(url, pool_size)
    else:
        raise DatabaseError(f"unsupported database {parsed.get_backend_name()!r}")
    try:
        engine = create_async_engine(url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"invalid database URL: {exc}") from exc
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
    return Database(url, engine, async_sessionmaker(engine, expire_on_commit=False),
                    _driver=driver)


@dataclass(slots=True)
class _Queue:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class _Conversions(Tx):
    def __init__(self, is_postgres: bool) -> None:
        self.is_postgres = is_postgres


_CONVERSIONS = {False: _Conversions(False), True: _Conversions(True)}


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN is ours to emit.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
