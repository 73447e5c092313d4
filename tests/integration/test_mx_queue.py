"""The forwarder's queue on a real store: leases written with the rows, outcomes
recorded per target, messages deleted once every target is final."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from mx_forwarder.queue import (
    NewMessage,
    Outcome,
    claim_due,
    record_outcomes,
    release,
    store_messages,
    sweep_spool,
)
from mx_forwarder.spool import Spool
from storage.db import Database
from storage.models.mail import DeliveryState, MailDelivery, MailMessage, MessageKind

TWO_TARGETS = NewMessage(MessageKind.FORWARD, "SRS0=x@fwd.test", "alice@sender.test",
                         b"Subject: q\r\n\r\nq\r\n",
                         (("team@hosted.test", "a@dest.test"), ("team@hosted.test", "b@dest.test")))


async def rows(db: Database) -> tuple[list[int], dict[int, DeliveryState]]:
    async with db.read() as session:
        messages = list((await session.execute(select(MailMessage.id))).scalars())
        deliveries = {d.id: d.state for d in (await session.execute(
            select(MailDelivery))).scalars()}
    return messages, deliveries


async def test_born_leased_rows_wait_for_their_worker(db: Database) -> None:
    until = datetime.now(UTC) + timedelta(seconds=300)
    async with db.write() as session:
        (stored,) = await store_messages(session, [TWO_TARGETS], None, 0, ("me", until))
    async with db.write() as session:  # another worker finds nothing: both are leased
        assert await claim_due(session, "other", 10, 60, skip_locked=db.is_postgres) == []
    await release(db, "me")  # what a restarted "me" does first
    async with db.write() as session:
        claimed = await claim_due(session, "other", 10, 60, skip_locked=db.is_postgres)
    assert sorted(c.delivery_id for c in claimed) == sorted(stored.delivery_ids)
    assert {c.target for c in claimed} == {"a@dest.test", "b@dest.test"}
    assert all(c.data == TWO_TARGETS.data for c in claimed)


async def test_message_kept_until_every_target_is_final(db: Database) -> None:
    async with db.write() as session:
        (stored,) = await store_messages(session, [TWO_TARGETS], None, 0)
    first, second = stored.delivery_ids
    mid = stored.message_id
    async with db.write() as session:
        await record_outcomes(session, [
            Outcome(first, mid, DeliveryState.DELIVERED, "ok"),
            Outcome(second, mid, DeliveryState.DEFERRED, "452 later",
                    datetime.now(UTC) + timedelta(seconds=60)),
        ])
    messages, deliveries = await rows(db)
    assert messages == [mid]
    assert deliveries == {first: DeliveryState.DELIVERED, second: DeliveryState.DEFERRED}
    async with db.write() as session:
        await record_outcomes(session, [Outcome(second, mid, DeliveryState.DELIVERED, "ok")])
    assert await rows(db) == ([], {})  # the deliveries went with their message


async def test_one_round_deletes_many_delivered_messages(db: Database) -> None:
    single = NewMessage(MessageKind.FORWARD, "", "", b"x\r\n", (("a@h.test", "t@d.test"),))
    async with db.write() as session:
        stored = await store_messages(session, [single] * 5 + [TWO_TARGETS], None, 0)
    outcomes = [Outcome(s.delivery_ids[0], s.message_id, DeliveryState.DELIVERED)
                for s in stored]
    async with db.write() as session:
        await record_outcomes(session, outcomes)
    messages, deliveries = await rows(db)
    assert messages == [stored[-1].message_id]  # its second target is still queued
    assert deliveries == {stored[-1].delivery_ids[0]: DeliveryState.DELIVERED,
                          stored[-1].delivery_ids[1]: DeliveryState.QUEUED}


async def test_sweep_removes_old_spool_files_no_message_names(
    db: Database, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    async with db.write() as session:  # spooled (threshold 0): its row names the file
        (stored,) = await store_messages(session, [TWO_TARGETS], spool, 0)
    (queued,) = spool.files()
    deleted = Path(spool.write(b"delivered; the crash came before the unlink"))
    half = spool.directory / "half-written.tmp"
    half.write_bytes(b"the crash came mid-write")
    fresh = Path(spool.write(b"another process is about to commit its row"))
    hour_ago = time.time() - 3700
    for path in (queued, deleted, half):
        os.utime(path, (hour_ago, hour_ago))

    assert await sweep_spool(db, spool) == 2
    assert sorted(spool.files()) == sorted([queued, fresh])
    async with db.read() as session:
        named = await session.scalar(
            select(MailMessage.spool_path).where(MailMessage.id == stored.message_id))
    assert named == str(queued)
