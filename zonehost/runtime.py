"""Running a command against the store: connect, check the schema, map errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from storage.db import Database, DatabaseError, connect
from storage.migrate import current_revision, head_revision, upgrade
from zonehost.config import Settings
from zonehost.errors import CommandError

T = TypeVar("T")


async def open_database(settings: Settings, *, migrate: bool = False) -> Database:
    """Connect; with `migrate`, create or upgrade the schema, else require it current."""
    try:
        db = connect(settings.database_url)
        await db.ping()
        if migrate:
            await upgrade(db)
        elif await current_revision(db) != head_revision():
            await db.close()
            raise CommandError(
                f"the database {db.safe_url} has no current schema: run `zonehost db upgrade`"
            )
        return db
    except DatabaseError as exc:
        raise CommandError(str(exc)) from exc


def run_with_database(
    settings: Settings, work: Callable[[Database], Awaitable[T]], *, migrate: bool = False
) -> T:
    async def run() -> T:
        db = await open_database(settings, migrate=migrate)
        try:
            return await work(db)
        except (OSError, DBAPIError, OperationalError) as exc:
            raise CommandError(f"database error: {exc}") from exc
        finally:
            await db.close()

    return asyncio.run(run())
