"""`zonehost db upgrade`: create or migrate the schema."""

from __future__ import annotations

import argparse
from typing import Any

from storage.db import Database
from storage.migrate import current_revision
from zonehost.config import Settings
from zonehost.runtime import run_with_database


def register(sub: Any) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="ACTION"
    )
    upgrade = db.add_parser("upgrade", help="create or migrate the schema (idempotent)")
    upgrade.set_defaults(func=cmd_upgrade)


def cmd_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> str | None:
        return await current_revision(db)

    revision = run_with_database(settings, work, migrate=True)
    print(f"schema at revision {revision}")
    return 0
