"""The change feed, read side: what followers (nameservers, secondaries'
NOTIFY senders) use to learn about committed zone writes.

Every follower polls `changes_after(last_id)`; on PostgreSQL it can also
LISTEN on FEED_CHANNEL to wake up at once (the NOTIFY is sent by the
writing transaction on commit). Polling stays the fallback: it is what
works on SQLite and on read replicas, where NOTIFY does not arrive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ZoneChange
from storage.zones import FEED_CHANNEL, DiffItem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    id: int
    zone_id: int
    zone_name: str
    serial: int
    previous_serial: int | None
    kind: str  # create, update, replace, delete, status
    full_reload: bool
    created_at: datetime
    removed: tuple[DiffItem, ...]
    added: tuple[DiffItem, ...]


def _event(row: ZoneChange) -> ChangeEvent:
    diff: dict[str, Any] = row.diff or {}
    return ChangeEvent(
        id=row.id,
        zone_id=row.zone_id,
        zone_name=row.zone_name,
        serial=row.serial,
        previous_serial=row.previous_serial,
        kind=row.kind,
        full_reload=row.full_reload,
        created_at=row.created_at,
        removed=tuple((n, t, ttl, c) for n, t, ttl, c in diff.get("removed", ())),
        added=tuple((n, t, ttl, c) for n, t, ttl, c in diff.get("added", ())),
    )


async def changes_after(session: AsyncSession, after_id: int, limit: int = 1000) -> list[ChangeEvent]:
    """Committed changes with id > after_id, oldest first."""
    rows = await session.execute(
        select(ZoneChange).where(ZoneChange.id > after_id).order_by(ZoneChange.id).limit(limit)
    )
    return [_event(r) for r in rows.scalars()]


async def last_change_id(session: AsyncSession) -> int:
    return int((await session.execute(select(func.max(ZoneChange.id)))).scalar() or 0)


async def zone_history(session: AsyncSession, zone_name: str) -> list[ChangeEvent]:
    """Every change of one zone, oldest first (IXFR and the zone history)."""
    rows = await session.execute(
        select(ZoneChange).where(ZoneChange.zone_name == zone_name).order_by(ZoneChange.id)
    )
    return [_event(r) for r in rows.scalars()]


class FeedListener:
    """LISTEN on PostgreSQL's feed channel; calls `wake()` on each NOTIFY.

    Runs on its own asyncpg connection (LISTEN needs a dedicated session)
    and reconnects with backoff; polling keeps working meanwhile.
    """

    def __init__(self, database_url: str, wake: Callable[[int], None]) -> None:
        url = make_url(database_url)
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="feed-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        import asyncpg  # only on PostgreSQL

        delay_s = 0.5
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(FEED_CHANNEL, self._on_notify)
                delay_s = 0.5
                while not conn.is_closed():
                    await asyncio.sleep(5)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (any failure: retry)
                log.warning("feed listener: %s; retrying in %.1fs", exc, delay_s)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 10)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._wake(int(payload))
        except ValueError:
            log.warning("feed listener: bad payload %r", payload)
