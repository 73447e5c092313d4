"""Fixtures shared by the whole suite.

`database_url` gives each test a fresh, migrated store: a new SQLite file
always, or a new PostgreSQL database when ZONEHOST_TEST_DATABASE_URL is
set (the suite then runs every database test on PostgreSQL).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from storage.db import Database, connect
from storage.migrate import upgrade

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("ZONEHOST_TEST_DATABASE_URL")


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` (checked for both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


async def _create_pg_database(base_url: str, template: str | None = None) -> str:
    import asyncpg

    url = make_url(base_url)
    name = f"zh_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(
        url.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return url.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(test_url: str) -> None:
    import asyncpg

    url = make_url(test_url)
    admin = await asyncpg.connect(
        url.set(drivername="postgresql", database="postgres").render_as_string(False)
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def backend() -> str:
    return "postgresql" if PG_URL else "sqlite"


def _migrate(url: str) -> None:
    async def run() -> None:
        db = connect(url)
        try:
            await upgrade(db)
        finally:
            await db.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """On PostgreSQL, one database migrated once; each test copies it."""
    if not PG_URL:
        yield None
        return
    url = asyncio.run(_create_pg_database(PG_URL))
    _migrate(url)
    yield make_url(url).database
    asyncio.run(_drop_pg_database(url))


@pytest.fixture
def database_url(tmp_path: Path, pg_template: str | None) -> Iterator[str]:
    """A fresh, migrated database for this test (SQLite, or PostgreSQL if configured)."""
    if PG_URL:
        url = asyncio.run(_create_pg_database(PG_URL, template=pg_template))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'zonehost.sqlite3'}"
        _migrate(url)
    yield url
    if PG_URL:
        asyncio.run(_drop_pg_database(url))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """An open Database on the fresh store."""
    database = connect(database_url)
    yield database
    await database.close()


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running `zonehost` subprocesses against the test store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
    env["ZONEHOST_DATABASE_URL"] = database_url
    return env
