"""Backpressure over real SMTP: a destination that stays down fills the queue
past the high-water mark; new mail then gets 451 4.3.2 at MAIL, what was
accepted stays queued and is delivered once the destination is back, and
new mail is accepted again only once the queue is down to the low mark."""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from mx_forwarder.queue import retry_now
from mx_forwarder.service import ForwarderHandle, start_forwarder
from storage.db import Database
from storage.models.mail import DeliveryState, MailDelivery
from tests.conftest import free_port
from tests.e2e.mx_support import Sink, add_alias, add_zone, config, queue_counts, send, wait_until

ALIAS = "contact@hosted.test"


def message(tag: int) -> bytes:
    return f"From: a@sender.test\r\nSubject: m{tag}\r\n\r\nbody {tag}\r\n".encode()


def rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("zonehost_mx_rejected_total", {"reason": reason}) or 0.0


async def refused_at_mail(port: int, tag: int) -> smtplib.SMTPSenderRefused:
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        await send(port, "a@sender.test", [ALIAS], message(tag))
    return info.value


@pytest.fixture
async def down_port(db: Database) -> int:
    await add_zone(db, "hosted.test")
    await add_alias(db, ALIAS, "me@down.test")
    return free_port()


async def start(db: Database, down_port: int, **overrides: object) -> ForwarderHandle:
    settings: dict[str, object] = {
        "transport": MappingProxyType({"down.test": ("127.0.0.1", down_port)}),
        "retry_base_s": 3600.0, "retry_max_s": 3600.0,  # deferred mail waits for the test
        "overload_check_s": 0.05, "overload_tarpit_from": 0,
    }
    settings.update(overrides)
    return await start_forwarder(config(**settings), db)


async def deferred_ids(db: Database) -> list[int]:
    async with db.read() as session:
        rows = await session.scalars(
            select(MailDelivery.message_id)
            .where(MailDelivery.state == DeliveryState.DEFERRED).order_by(MailDelivery.id))
        return list(rows)


@pytest.fixture
async def sink_on(down_port: int) -> AsyncIterator[list[Sink]]:
    started: list[Sink] = []
    yield started
    for sink in started:
        await sink.close()


async def test_full_queue_refuses_new_mail_until_low_mark(
    db: Database, down_port: int, sink_on: list[Sink]
) -> None:
    # The test counts the queue itself (`_counted`): a periodic count overlapping a
    # send may count that message twice until the next round, by design.
    handle = await start(db, down_port, overload_high=5, overload_low=2,
                         overload_check_s=3600.0)
    try:
        assert handle.port is not None and handle.overload is not None
        for tag in range(5):
            assert await send(handle.port, "a@sender.test", [ALIAS], message(tag)) == {}
        await wait_until(lambda: _all_deferred(db, 5))  # tried once, destination down
        before = rejected("overload")
        refused = await refused_at_mail(handle.port, 99)
        assert refused.smtp_code == 451 and refused.smtp_error.startswith(b"4.3.2")
        assert rejected("overload") == before + 1
        assert REGISTRY.get_sample_value("zonehost_mx_overloaded") == 1
        assert await queue_counts(db) == (5, 5)  # nothing accepted is lost, nothing added

        # the destination comes back; two messages go out: 3 left, over the low mark
        sink = await Sink().start(down_port)
        sink_on.append(sink)
        ids = await deferred_ids(db)
        await _retry(db, handle, ids[:2])
        await sink.wait_for(2)
        await wait_until(lambda: _counted(handle, 3))
        assert (await refused_at_mail(handle.port, 98)).smtp_code == 451  # hysteresis

        # one more: down to the low mark, new mail is accepted again
        await _retry(db, handle, ids[2:3])
        await sink.wait_for(3)
        await wait_until(lambda: _counted(handle, 2))
        assert await send(handle.port, "a@sender.test", [ALIAS], message(5)) == {}
        assert REGISTRY.get_sample_value("zonehost_mx_overloaded") == 0

        await _retry(db, handle, ids[3:])
        got = await sink.wait_for(6)
        subjects = sorted(m.data.split(b"Subject: ")[1].split(b"\r\n")[0] for m in got)
        assert subjects == [b"m0", b"m1", b"m2", b"m3", b"m4", b"m5"]  # each one, once
        await wait_until(lambda: _empty(db))
    finally:
        await handle.close()


async def test_queue_over_the_mark_at_start_is_refused_at_once(
    db: Database, down_port: int
) -> None:
    first = await start(db, down_port, overload_high=0)
    try:
        assert first.port is not None
        for tag in range(3):
            await send(first.port, "a@sender.test", [ALIAS], message(tag))
    finally:
        await first.close()
    # a restarted forwarder (or another MX host on the same queue) sees the depth
    handle = await start(db, down_port, overload_high=3, overload_low=1,
                         overload_check_s=3600.0)
    try:
        assert handle.port is not None
        assert (await refused_at_mail(handle.port, 3)).smtp_code == 451
        assert await queue_counts(db) == (3, 3)
    finally:
        await handle.close()


async def test_tarpit_before_the_mark(db: Database, down_port: int) -> None:
    handle = await start(db, down_port, overload_high=3, overload_low=1,
                         overload_tarpit_from=1, overload_tarpit_max_delay_s=0.2,
                         overload_check_s=3600.0)  # the depth is what this process queued
    try:
        assert handle.port is not None
        held = REGISTRY.get_sample_value("zonehost_mx_tarpit_seconds_total") or 0.0
        await send(handle.port, "a@sender.test", [ALIAS], message(0))  # depth 0: no delay
        await send(handle.port, "a@sender.test", [ALIAS], message(1))  # depth 1: 0 s
        await send(handle.port, "a@sender.test", [ALIAS], message(2))  # depth 2: half of it
        after = REGISTRY.get_sample_value("zonehost_mx_tarpit_seconds_total") or 0.0
        assert after - held == pytest.approx(0.1)
        assert (await refused_at_mail(handle.port, 3)).smtp_code == 451  # depth 3
    finally:
        await handle.close()


async def test_low_disk_gets_452(db: Database, down_port: int, tmp_path: Path) -> None:
    handle = await start(db, down_port, spool_dir=str(tmp_path / "spool"),
                         min_free_bytes=2**62)  # more than any disk has
    try:
        assert handle.port is not None
        before = rejected("low_disk")
        refused = await refused_at_mail(handle.port, 0)
        assert refused.smtp_code == 452 and refused.smtp_error.startswith(b"4.3.1")
        assert rejected("low_disk") == before + 1
        assert await queue_counts(db) == (0, 0)
    finally:
        await handle.close()


async def _all_deferred(db: Database, count: int) -> bool:
    return len(await deferred_ids(db)) == count


async def _counted(handle: ForwarderHandle, depth: int) -> bool:
    assert handle.overload is not None
    await handle.overload.refresh()
    return handle.overload.counted == depth


async def _empty(db: Database) -> bool:
    return await queue_counts(db) == (0, 0)


async def _retry(db: Database, handle: ForwarderHandle, ids: list[int]) -> None:
    async with db.write() as session:  # what `zonehost mail retry ID` does
        for message_id in ids:
            await retry_now(session, message_id)
    assert handle.delivery is not None
    handle.delivery.wake()


@contextlib.asynccontextmanager
async def store_locked(db: Database) -> AsyncIterator[None]:
    """Another client holds the queue tables' write lock (a long import, a failover)."""
    if db.is_sqlite:
        path = make_url(db.url).database
        assert path
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            # In a thread: a forwarder transaction open on this loop must be able to
            # commit while we wait for the lock (a blocking call here would deadlock).
            await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
            yield
            other.execute("ROLLBACK")
        finally:
            other.close()
        return
    async with db.engine.connect() as conn:
        await conn.execute(text("LOCK TABLE mail_messages IN EXCLUSIVE MODE"))
        yield
        await conn.rollback()


async def test_stuck_queue_write_refuses_new_mail(db: Database, down_port: int) -> None:
    handle = await start(db, down_port, overload_high=0, overload_write_wait_s=0.3)
    try:
        assert handle.port is not None
        port = handle.port
        before = rejected("slow_writes")
        async with store_locked(db):
            first = asyncio.create_task(send(port, "a@sender.test", [ALIAS], message(0)))
            await wait_until(lambda: _write_waits(handle, 0.3))
            refused = await refused_at_mail(port, 1)
            assert refused.smtp_code == 451 and refused.smtp_error.startswith(b"4.3.2")
            assert not first.done()  # its 250 waits for the commit
        assert await first == {}  # accepted once the store moves again
        assert rejected("slow_writes") == before + 1
        assert await send(port, "a@sender.test", [ALIAS], message(2)) == {}
        assert await queue_counts(db) == (2, 2)
    finally:
        await handle.close()


async def _write_waits(handle: ForwarderHandle, seconds: float) -> bool:
    return handle.writer.oldest_wait_s() >= seconds
