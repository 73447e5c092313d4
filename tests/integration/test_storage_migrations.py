"""Migrations from empty, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect

from storage.db import Database
from storage.migrate import current_revision, head_revision, upgrade
from storage.models import Base


async def test_schema_is_at_head_with_every_table(db: Database) -> None:
    assert await current_revision(db) == head_revision()
    async with db.engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


async def test_upgrade_is_idempotent(db: Database) -> None:
    await upgrade(db)
    await upgrade(db)
    assert await current_revision(db) == head_revision()


async def test_models_match_migrations(db: Database) -> None:
    """Autogenerate finds nothing to do: the migrations create what the models say."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    assert diff == []
