"""Nameservers report through the store; the API and billing read it.

A nameserver instance records how far it has applied the change feed, so a
change is INSYNC once every live instance has applied it. It also flushes
its per-zone query counters here for the customer statistics page.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.nameserver import NameserverInstance, QueryCount

LIVE_WITHIN = timedelta(seconds=30)  # an instance reports at least this often


class SyncStatus(enum.StrEnum):
    PENDING = "PENDING"
    INSYNC = "INSYNC"


async def report_applied(session: AsyncSession, instance: str, change_id: int) -> None:
    """Record that `instance` serves everything up to feed id `change_id`."""
    now = datetime.now(UTC)
    stmt = _insert(session)(NameserverInstance).values(
        id=instance, started_at=now, last_seen=now, applied_change_id=change_id
    )
    # One upsert: the follower and the heartbeat may report at the same moment.
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"], set_={"applied_change_id": change_id, "last_seen": now}
        )
    )


def _insert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO UPDATE on both stores."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


async def forget_instance(session: AsyncSession, instance: str) -> None:
    row = await session.get(NameserverInstance, instance)
    if row is not None:
        await session.delete(row)


async def change_status(session: AsyncSession, change_id: int) -> SyncStatus:
    """INSYNC when every live nameserver has applied `change_id` (and one is live)."""
    since = datetime.now(UTC) - LIVE_WITHIN
    applied = (
        await session.execute(
            select(NameserverInstance.applied_change_id).where(NameserverInstance.last_seen >= since)
        )
    ).scalars().all()
    if applied and min(applied) >= change_id:
        return SyncStatus.INSYNC
    return SyncStatus.PENDING


async def add_query_counts(
    session: AsyncSession, day: date, counts: Mapping[tuple[str, int, int], int]
) -> None:
    """Add {(zone, qtype, rcode): n} to the day's counters (an upsert)."""
    if not counts:
        return
    rows = [
        {"zone_name": z, "day": day, "qtype": t, "rcode": r, "count": n}
        for (z, t, r), n in counts.items()
    ]
    stmt = _insert(session)(QueryCount)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["zone_name", "day", "qtype", "rcode"],
            set_={"count": QueryCount.count + stmt.excluded.count},
        ),
        rows,
    )


async def query_counts(
    session: AsyncSession, zone_name: str, since: date, until: date
) -> list[tuple[date, int, int, int]]:
    """(day, qtype, rcode, count) for one zone, days in [since, until]."""
    rows = await session.execute(
        select(QueryCount.day, QueryCount.qtype, QueryCount.rcode, QueryCount.count)
        .where(QueryCount.zone_name == zone_name, QueryCount.day >= since, QueryCount.day <= until)
        .order_by(QueryCount.day, QueryCount.qtype, QueryCount.rcode)
    )
    return [(d, t, r, c) for d, t, r, c in rows]
