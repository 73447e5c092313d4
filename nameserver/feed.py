"""Follow the store's change feed and keep the in-memory zones current.

Each committed write is a row in the feed. The follower reads the rows
after the last one it applied: on PostgreSQL a NOTIFY wakes it at once,
everywhere it also polls (SQLite, read replicas, a lost LISTEN). An edit of
a few RRsets is applied to the zone's index in place of those RRsets; a
zone created, replaced, suspended or deleted is reloaded whole, its index
built from the rows as they stream in, a slice at a time on the event loop,
so that queries for other zones keep being answered meanwhile. After each batch it reports how far it got, which is
what the API's propagation status reads.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import dns.rcode
import dns.rdatatype
from sqlalchemy.ext.asyncio import AsyncSession

from nameserver.index import Zone, ZoneBuilder, ZoneTable
from nameserver.metrics import NameserverMetrics
from storage import feed, nsstatus
from storage.db import Database
from storage.feed import ChangeEvent
from storage.snapshot import (
    FeedProbe,
    changes_after,
    load_rrsets,
    load_zone_heads,
    stream_rrsets,
)

log = logging.getLogger(__name__)

ZoneChanged = Callable[[str, int], None]  # (origin, new serial), e.g. send NOTIFY
LISTEN_POLL_S = 0.5  # poll interval while a PostgreSQL LISTEN wakes the follower
STATS_CHUNK = 50  # per-zone counters written per statement
RELOAD_SLICE_S = 0.002  # indexing time between two pauses during a reload
# A pause sleeps, so that a reload uses about two thirds of a core, not all of
# it: a process that never sleeps competes with every other busy process for
# the CPU, and on a loaded machine its queries waited for the scheduler (a
# 95 ms stall in the bench's reload window, against a 1 ms baseline).
RELOAD_PAUSE_S = 0.001
RELOAD_BATCH_ROWS = 500  # rows per read from the store during a reload (each read yields)


@dataclass(frozen=True, slots=True)
class FeedOptions:
    poll_interval_s: float = 0.05  # how often to look for new rows without a NOTIFY
    listen: bool = True  # LISTEN on PostgreSQL
    heartbeat_s: float = 10.0  # report liveness at least this often
    stats_flush_s: float = 60.0  # flush per-zone query counters to the store
    instance: str = f"{socket.gethostname()}:{os.getpid()}"


async def load_everything(db: Database, metrics: NameserverMetrics | None = None) -> tuple[ZoneTable, int]:
    """Every zone of the store, and the feed position they reflect.

    The position is read first: a change committed during the load is
    applied again afterwards, which is harmless (applying reads the store).
    Rows are indexed as they stream in (see `ZoneBuilder`).
    """
    started = time.perf_counter()
    with _collector_paused():
        async with db.read() as session:
            position = await feed.last_change_id(session)
            zones = await _load_zones(session, None, slice_s=None)
        table = ZoneTable(zones)
    _trim_heap()
    elapsed = time.perf_counter() - started
    if metrics is not None:
        metrics.observe_reload(elapsed)
        metrics.zones_loaded = len(table.index.zones)
        metrics.records_loaded = table.index.record_count
    log.info("loaded %d zones in %.3f s (feed position %d)", len(zones), elapsed, position)
    return table, position


async def _load_zones(
    session: AsyncSession, names: Sequence[str] | None, slice_s: float | None
) -> list[Zone]:
    """Index the named zones (all with None) straight from the store's rows.
    With `slice_s`, give the event loop a turn whenever that much time went
    into indexing, so that queries for other zones keep being answered."""
    heads = await load_zone_heads(session, names)
    builders: dict[int, ZoneBuilder] = {}
    for head in heads:
        builder = builders[head.zone_id] = ZoneBuilder(
            head.zone_id, head.origin, head.serial, head.active
        )
        builder.add(head.soa)
    if builders:
        deadline = time.perf_counter() + (slice_s or 0.0)
        ids = None if names is None else list(builders)
        async for batch in stream_rrsets(session, ids, RELOAD_BATCH_ROWS if slice_s else 2000):
            for zone_id, rrset in batch:
                found = builders.get(zone_id)
                if found is not None:
                    found.add(rrset)
            del batch
            if slice_s is not None and time.perf_counter() >= deadline:
                await asyncio.sleep(RELOAD_PAUSE_S)
                deadline = time.perf_counter() + slice_s
    return [b.finish() for b in builders.values()]


def _trim_heap() -> None:
    """Hand the heap freed by loading (driver buffers, rows) back to the system."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class FeedFollower:
    def __init__(
        self,
        db: Database,
        table: ZoneTable,
        position: int,
        options: FeedOptions = FeedOptions(),
        metrics: NameserverMetrics | None = None,
        on_zone_changed: Sequence[ZoneChanged] = (),
        status_db: Database | None = None,
    ) -> None:
        self.db = db
        # Where to report what we serve: the primary, when `db` is a
        # read-only replica (None: the same store as `db`).
        self.status_db = status_db or db
        self.table = table
        self.position = position
        self.options = options
        self.metrics = metrics
        self.on_zone_changed = list(on_zone_changed)
        self.lag_s = 0.0  # commit-to-applied delay of the last change applied
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listener: feed.FeedListener | None = None
        self._probe = FeedProbe(db.url)

    def start(self) -> None:
        if self.options.listen and self.db.is_postgres:
            self._listener = feed.FeedListener(self.db.url, lambda _id: self._wake.set())
            self._listener.start()
        self._tasks = [
            asyncio.create_task(self._follow(), name="feed-follow"),
            asyncio.create_task(self._report(), name="feed-report"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self._listener is not None:
            await self._listener.stop()
        self._probe.close()
        try:
            async with self.status_db.write() as session:
                await self._flush_stats(session)
                await nsstatus.forget_instance(session, self.options.instance)
        except Exception as exc:  # noqa: BLE001  (shutting down: log and go)
            log.warning("feed: final report failed: %s", exc)

    async def catch_up(self) -> int:
        """Apply every change committed so far; returns how many were applied."""
        applied = 0
        while True:
            async with self.db.read() as session:
                events = await changes_after(session, self.position)
            if not events:
                return applied
            await self._apply(events)
            applied += len(events)

    async def _follow(self) -> None:
        # With LISTEN, a NOTIFY wakes the follower at once; polling stays as the
        # fallback (a lost connection is noticed and re-established within
        # seconds), so it need not be frequent.
        interval_s = self.options.poll_interval_s
        if self._listener is not None:
            interval_s = max(interval_s, LISTEN_POLL_S)
        while True:
            try:
                newest = self._probe.newest_id()
                if (newest is None or newest > self.position) and await self.catch_up():
                    await self._report_position()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad moment of the database: keep serving, retry
                log.exception("feed: cannot apply changes after id %d", self.position)
                await asyncio.sleep(1.0)
            try:
                await asyncio.wait_for(self._wake.wait(), interval_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _apply(self, events: list[ChangeEvent]) -> None:
        by_zone: dict[str, list[ChangeEvent]] = {}
        for event in events:
            by_zone.setdefault(event.zone_name, []).append(event)
        for zone_name, changes in by_zone.items():
            started = time.perf_counter()
            if any(c.full_reload for c in changes) or self.table.get(zone_name) is None:
                await self._reload(zone_name)
            else:
                await self._patch(zone_name, changes)
            if self.metrics is not None:
                self.metrics.observe_reload(time.perf_counter() - started)
            serial = changes[-1].serial
            for callback in self.on_zone_changed:
                callback(zone_name, serial)
        self.position = events[-1].id
        self.lag_s = (datetime.now(UTC) - _aware(events[-1].created_at)).total_seconds()
        if self.metrics is not None:
            self.metrics.zones_loaded = len(self.table.index.zones)
            self.metrics.records_loaded = self.table.index.record_count

    async def _reload(self, zone_name: str) -> None:
        with _collector_paused():
            async with self.db.read() as session:
                zones = await _load_zones(session, [zone_name], slice_s=RELOAD_SLICE_S)
        if not zones:
            if self.table.remove_zone(zone_name):
                log.info("zone=%s removed", zone_name)
            return
        zone = self.table.install_zone(zones[0])
        log.info("zone=%s serial=%d reloaded (%d records)", zone_name, zone.serial, zone.record_count)

    async def _patch(self, zone_name: str, changes: list[ChangeEvent]) -> None:
        keys = {(name, rdtype) for c in changes for name, rdtype, _, _ in (*c.removed, *c.added)}
        keys.add((zone_name, int(dns.rdatatype.SOA)))
        async with self.db.read() as session:
            loaded = await load_rrsets(session, zone_name, keys)
        if loaded is None:
            self.table.remove_zone(zone_name)
            return
        zone, rrsets = loaded
        present = {(r.name, r.rdtype) for r in rrsets}
        self.table.apply_rrsets(zone_name, zone.serial, rrsets, sorted(keys - present))

    async def _report_position(self) -> None:
        async with self.status_db.write() as session:
            await nsstatus.report_applied(session, self.options.instance, self.position)

    async def _report(self) -> None:
        """Heartbeat and query-counter flush; a failure is logged and retried."""
        last_flush = time.monotonic()
        while True:
            try:
                async with self.status_db.write() as session:
                    await nsstatus.report_applied(session, self.options.instance, self.position)
                    if time.monotonic() - last_flush >= self.options.stats_flush_s:
                        await self._flush_stats(session)
                        last_flush = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("feed: heartbeat failed: %s", exc)
            await asyncio.sleep(min(self.options.heartbeat_s, self.options.stats_flush_s))

    async def _flush_stats(self, session: AsyncSession) -> None:
        if self.metrics is None:
            return
        counts: dict[tuple[str, int, int], int] = {}
        for item in self.metrics.drain():
            key = (item.zone, _qtype(item.qtype), _rcode(item.rcode))
            counts[key] = counts.get(key, 0) + item.queries
        today = datetime.now(UTC).date()
        # In chunks, with a turn of the loop between them: one upsert of the
        # counters of a thousand zones kept queries waiting for 60 ms.
        items = list(counts.items())
        for start in range(0, len(items), STATS_CHUNK):
            await nsstatus.add_query_counts(session, today, dict(items[start : start + STATS_CHUNK]))
            await asyncio.sleep(0)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Read zones without the cyclic garbage collector, then freeze what
    was read. Zone data is a large acyclic graph of tuples and bytes: left
    to the collector, each full collection during a big load walks all of
    it (tens of ms per 100,000 names), stalling queries for other zones.
    Frozen objects are still freed by reference counting."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; the store writes UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _qtype(label: str) -> int:
    try:
        return int(dns.rdatatype.from_text(label))
    except dns.rdatatype.UnknownRdatatype:
        return 0


def _rcode(label: str) -> int:
    try:
        return int(dns.rcode.from_text(label))
    except dns.rcode.UnknownRcode:
        return int(label) if label.isdigit() else 0
