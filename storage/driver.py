"""Plain driver calls for the hot write paths: SQL with `$1` placeholders,
no ORM unit of work, no statement compilation per call.

An ORM session costs about 800 Python calls per transaction and 450 per
statement; the zone API's one-RRset edit (a dozen statements) spent most
of its CPU there. A `Tx` runs the same SQL text on either backend:

- PostgreSQL: an asyncpg pool of its own (JSON encoded and decoded as the
  engine does; no reset query at release, since every transaction ends in
  COMMIT or ROLLBACK and takes transaction-scoped advisory locks only).
- SQLite: one sqlite3 connection for writes and one for reads, called on
  the event loop. A write starts with BEGIN IMMEDIATE without waiting; if
  another process holds the write lock, that BEGIN waits in a thread (busy
  timeout 30 s), so the loop never sleeps on a lock. With the write lock
  held, a statement is in-memory work plus a write() to the WAL
  (synchronous=NORMAL: no fsync at commit), cheaper than a thread hand-off.
  Checkpoints (which fsync) run in a thread every CHECKPOINT_EVERY commits,
  not in a commit on the loop.
- `PgDriver.statements()`: statements on one connection outside any
  transaction, each committed alone (PostgreSQL autocommit): for a write
  that is one statement, planned from reads it checks again under its
  lock (storage.zones.apply_changes), so that no lock is held across
  round trips and the COMMIT is no round trip of its own.
- `SessionTx`: the same SQL inside an ORM session's transaction, for the
  writers that use the ORM around it.

SQL is written for PostgreSQL with three portable forms that SQLite gets
rewritten: `col = ANY($n)` (the parameter made by `tx.array()`), a
trailing `FOR UPDATE [OF t]` (SQLite's write lock is the whole database)
and `string_agg(x, sep)` (SQLite's `group_concat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncSession

Row = Sequence[Any]
T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
_PLACEHOLDER = re.compile(r"\$(\d+)")
_ANY = re.compile(r"= ANY\(\$(\d+)\)")
_FOR_UPDATE = re.compile(r"\s+FOR UPDATE( OF \w+)?\s*$")
_STRING_AGG = re.compile(r"\bstring_agg\(")


@lru_cache(maxsize=512)
def sqlite_sql(sql: str) -> str:
    """`sql` as SQLite takes it: `?1` placeholders, json_each() for ANY, no FOR
    UPDATE, group_concat() for string_agg()."""
    sql = _FOR_UPDATE.sub("", sql)
    sql = _ANY.sub(r"IN (SELECT value FROM json_each(?\1))", sql)
    sql = _STRING_AGG.sub("group_concat(", sql)
    return _PLACEHOLDER.sub(r"?\1", sql)


def _processors(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    kind = DateTime(timezone=True).dialect_impl(dialect)
    to_db = kind.bind_processor(dialect) or (lambda v: v)
    from_db = kind.result_processor(dialect, None) or (lambda v: v)
    return to_db, from_db


_SQLITE_TIME = _processors(sqlite.dialect())
_PG_TIME = _processors(postgresql.dialect())  # type: ignore[no-untyped-call]


class Tx:
    """One transaction (or, from `Database.fetch`, one statement); see the module doc."""

    is_postgres: bool
    # False for `Database.statements()`: each statement is a transaction of
    # its own (PostgreSQL's autocommit), so nothing stays locked between them.
    in_transaction: bool = True
    # after_commit()'s callbacks; None: this Tx cannot tell when it commits.
    _after_commit: list[Callable[[], None]] | None = None

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call `fn` once what was written so far is committed: at once outside
        a transaction, after the COMMIT in one, never if it rolls back. A
        SessionTx does not see its session's commit and drops `fn`."""
        if not self.in_transaction:
            fn()
        elif self._after_commit is not None:
            self._after_commit.append(fn)

    def _committed(self) -> None:
        for fn in self._after_commit or ():
            fn()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        raise NotImplementedError

    async def execute(self, sql: str, *args: object) -> None:
        raise NotImplementedError

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        raise NotImplementedError

    async def fetchrow(self, sql: str, *args: object) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    # Values in and out, stored exactly as the ORM stores them.
    def array(self, values: Sequence[object]) -> object:
        """The parameter for `= ANY($n)`."""
        return list(values) if self.is_postgres else json.dumps(list(values))

    @staticmethod
    def json(value: object) -> str:
        return json.dumps(value)

    def json_out(self, raw: object) -> Any:
        return json.loads(raw) if isinstance(raw, str | bytes) else raw

    def time(self, value: datetime | None) -> object:
        return (_PG_TIME if self.is_postgres else _SQLITE_TIME)[0](value)

    def time_out(self, raw: object) -> datetime | None:
        value: datetime | None = (_PG_TIME if self.is_postgres else _SQLITE_TIME)[1](raw)
        return value


class SessionTx(Tx):
    """A Tx inside an ORM session's transaction (pending ORM changes are flushed first)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self.is_postgres = session.get_bind().dialect.name == "postgresql"

    def _sql(self, sql: str) -> str:
        return sql if self.is_postgres else sqlite_sql(sql)

    async def _connection(self) -> Any:
        session = self._session
        if session.new or session.dirty or session.deleted:
            await session.flush()
        return await session.connection()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        conn = await self._connection()
        return list((await conn.exec_driver_sql(self._sql(sql), args)).all())

    async def execute(self, sql: str, *args: object) -> None:
        conn = await self._connection()
        await conn.exec_driver_sql(self._sql(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            conn = await self._connection()
            await conn.exec_driver_sql(self._sql(sql), [tuple(r) for r in rows])


# --- SQLite ---------------------------------------------------------------

def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


def _patiently(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn` (in a thread) with the busy timeout on."""
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return fn(conn)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


class _SqliteTx(Tx):
    is_postgres = False

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._after_commit = []

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        sql = sqlite_sql(sql)
        return await _run(self._conn, lambda c: c.execute(sql, args).fetchall())

    async def execute(self, sql: str, *args: object) -> None:
        sql = sqlite_sql(sql)
        await _run(self._conn, lambda c: c.execute(sql, args))

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        sql = sqlite_sql(sql)
        await _run(self._conn, lambda c: c.executemany(sql, rows))


async def _run(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn` on the loop; if it meets a lock, again in a thread that waits for it.

    A statement refused with SQLITE_BUSY changed nothing, so it can be rerun.
    Only the connection's one user calls this (the write lock, or a reader
    that does not await between statements).
    """
    try:
        return fn(conn)
    except sqlite3.OperationalError as exc:
        if not _is_busy(exc):
            raise
    future = asyncio.get_running_loop().run_in_executor(None, _patiently, conn, fn)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        # The thread goes on: wait for it so that the caller's rollback sees its result.
        with contextlib.suppress(BaseException):
            await future
        raise


# The WAL is copied back into the database (a checkpoint, which fsyncs) by
# a thread every so many commits of ours, never by a commit on the loop.
CHECKPOINT_EVERY = 200


class SqliteDriver:
    def __init__(self, path: str) -> None:
        self._path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._commits = 0
        self._checkpoint: asyncio.Future[None] | None = None

    async def _open(self) -> sqlite3.Connection:
        def open_() -> sqlite3.Connection:
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None, check_same_thread=False,
                                   cached_statements=256)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            return conn
        return await asyncio.to_thread(open_)

    def _committed(self) -> None:
        self._commits += 1
        if self._commits % CHECKPOINT_EVERY or (
            self._checkpoint is not None and not self._checkpoint.done()
        ):
            return

        def checkpoint() -> None:
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError:
                pass  # busy: the next one will do
            finally:
                conn.close()

        self._checkpoint = asyncio.get_running_loop().run_in_executor(None, checkpoint)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """The caller holds the process's write lock."""
        if self._writer is None:
            self._writer = await self._open()
        conn = self._writer
        if conn.in_transaction:  # left open by a cancelled wait for the lock
            conn.execute("ROLLBACK")
        await _run(conn, lambda c: c.execute("BEGIN IMMEDIATE"))
        tx = _SqliteTx(conn)
        try:
            yield tx
            await _run(conn, lambda c: c.execute("COMMIT"))
            self._committed()
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        tx._committed()

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        """One read statement, outside any transaction."""
        if self._reader is None:
            self._reader = await self._open()
        sql = sqlite_sql(sql)
        try:
            return self._reader.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
        # Rare (a checkpoint restarting the WAL): wait on a connection of its own,
        # so that the shared reader stays usable from the loop meanwhile.
        def patient() -> list[Row]:
            conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
            try:
                return conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        return await asyncio.to_thread(patient)

    async def close(self) -> None:
        if self._checkpoint is not None:
            await self._checkpoint
        for conn in (self._writer, self._reader):
            if conn is not None:
                conn.close()
        self._writer = self._reader = None


# --- PostgreSQL -----------------------------------------------------------

class _PgTx(Tx):
    is_postgres = True

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._after_commit = []

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        return list(await self._conn.fetch(sql, *args))

    async def execute(self, sql: str, *args: object) -> None:
        await self._conn.execute(sql, *args) if args else await self._conn.execute(sql)

    async def executemany(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        if rows:
            await self._conn.executemany(sql, rows)


class _PgStatementsTx(_PgTx):
    """Statements on one connection outside any transaction: each commits alone."""

    in_transaction = False


async def _init_connection(conn: Any) -> None:
    """JSON in and out as the engine's asyncpg dialect does (text in, parsed out)."""
    await conn.set_type_codec("json", encoder=str.encode,
                              decoder=lambda b: json.loads(b.decode()),
                              schema="pg_catalog", format="binary")


async def _no_reset(_conn: Any) -> None:
    """asyncpg rolls back an open transaction at release by itself; nothing else to undo."""


class PgDriver:
    def __init__(self, url: str, max_size: int) -> None:
        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(
            hide_password=False)
        self._max_size = max_size
        self._pool: Any = None
        self._opening = asyncio.Lock()

    async def _get_pool(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    import asyncpg  # only on PostgreSQL

                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_size,
                        init=_init_connection, reset=_no_reset)
        return self._pool

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            tx = _PgTx(conn)
            try:
                yield tx
                await conn.execute("COMMIT")
            except asyncio.CancelledError:
                raise  # the pool's release rolls back (or drops the connection)
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    with contextlib.suppress(Exception):
                        await conn.execute("ROLLBACK")
                raise
        tx._committed()

    @contextlib.asynccontextmanager
    async def statements(self) -> AsyncIterator[Tx]:
        """One pooled connection, no transaction: every statement commits on its own."""
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            yield _PgStatementsTx(conn)

    async def fetch(self, sql: str, *args: object) -> list[Row]:
        pool = await self._get_pool()
        return list(await pool.fetch(sql, *args))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
