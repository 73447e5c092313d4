"""Edits through plain driver transactions (storage.driver, `Database.transaction`)
write exactly what the ORM writes and reads, roll back whole, and on SQLite
wait for another process's write lock without stopping the event loop."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from storage import driver, feed
from storage import zones as store
from storage.db import Database
from storage.models import AuditEntry, Zone, ZoneChange
from storage.zones import OPERATOR, Actor, ZoneConflict
from tests.integration.zonedata import SOA, drop, origin, put, rrset

ACTOR = Actor("user:7", account_id=None, user_id=7, source_ip="192.0.2.9", credential="token:3")
SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$")


async def _create(db: Database, name: str) -> store.WriteResult:
    async with db.write() as session:
        return await store.create_zone(
            session, origin(name), SOA, OPERATOR,
            rrsets=[rrset(name, "@", "NS", "ns1.example.net."),
                    rrset(name, "www", "A", "192.0.2.1")])


async def test_a_driver_edit_writes_what_the_orm_reads_back(db: Database) -> None:
    created = await _create(db, "drv.example")
    async with db.transaction() as tx:
        result = await store.apply_changes(
            tx, "drv.example.", [put("drv.example", "www", "A", "192.0.2.2", "192.0.2.3")], ACTOR)
    assert result.serial > created.serial and result.change_id > created.change_id
    async with db.read() as session:
        zone = (await session.execute(select(Zone).where(Zone.name == "drv.example."))).scalar_one()
        change = await session.get(ZoneChange, result.change_id)
        audit = (await session.execute(
            select(AuditEntry).where(AuditEntry.change_id == result.change_id))).scalar_one()
        sets = await store.current_rrsets(session, zone.id)
        events = await feed.changes_after(session, created.change_id)
        if db.is_sqlite:  # datetimes stored in the ORM's text format, not isoformat()
            stamps: Sequence[str] = (await session.execute(text(
                "SELECT created_at FROM zone_changes ORDER BY id"))).scalars().all()
            assert all(SQLITE_TIME.match(s) for s in stamps), stamps
            assert SQLITE_TIME.match((await session.execute(text(
                "SELECT updated_at FROM zones"))).scalar_one())
    assert zone.serial == result.serial and zone.updated_at is not None
    assert change is not None and change.serial == result.serial
    assert change.previous_serial == created.serial and change.kind == "update"
    assert change.created_at.year >= 2024 and change.full_reload is False
    assert change.diff == {"removed": [["www.drv.example.", 1, 300, "192.0.2.1"]],
                           "added": [["www.drv.example.", 1, 300, "192.0.2.2"],
                                     ["www.drv.example.", 1, 300, "192.0.2.3"]]}
    assert (audit.actor, audit.user_id, audit.source_ip, audit.credential) == (
        "user:7", 7, "192.0.2.9", "token:3")
    assert audit.action == "zone.update" and audit.object_name == "drv.example."
    assert audit.before == change.diff["removed"] and audit.after == change.diff["added"]
    assert audit.at.year >= 2024
    assert sets[("www.drv.example.", 1)].rdata_texts() == ("192.0.2.2", "192.0.2.3")
    assert [(e.id, e.serial) for e in events] == [(result.change_id, result.serial)]


async def test_a_failed_driver_transaction_leaves_nothing(db: Database) -> None:
    created = await _create(db, "undo.example")
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await store.apply_changes(
                tx, "undo.example.", [put("undo.example", "www", "A", "192.0.2.7")], ACTOR)
            raise RuntimeError("after the write, before the commit")
    async with db.transaction() as tx:  # the connection is usable again
        zone = await store.lock_zone(tx, "undo.example.")
    assert zone is not None and zone.serial == created.serial
    async with db.read() as session:
        assert await feed.last_change_id(session) == created.change_id
        sets = await store.current_rrsets(session, zone.id)
    assert sets[("www.undo.example.", 1)].rdata_texts() == ("192.0.2.1",)


async def test_concurrent_driver_edits_get_distinct_serials_in_feed_order(db: Database) -> None:
    await _create(db, "many.example")

    async def edit(i: int) -> store.WriteResult:
        async with db.transaction() as tx:
            return await store.apply_changes(
                tx, "many.example.", [put("many.example", f"h{i}", "A", f"192.0.2.{i + 1}")],
                ACTOR)

    results = await asyncio.gather(*(edit(i) for i in range(12)))
    async with db.read() as session:
        events = await feed.changes_after(session, 0)
    assert len({r.serial for r in results}) == 12
    updates = [e for e in events if e.kind == "update"]
    assert [e.serial for e in updates] == sorted(e.serial for e in updates)
    assert [e.id for e in updates] == sorted(r.change_id for r in results)


async def test_sqlite_edit_waits_for_another_writer_without_stopping_the_loop(
    db: Database,
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite's database-wide write lock")
    await _create(db, "wait.example")
    other = sqlite3.connect(str(make_url(db.url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
    ticks = 0

    async def edit() -> store.WriteResult:
        async with db.transaction() as tx:
            return await store.apply_changes(
                tx, "wait.example.", [put("wait.example", "www", "A", "192.0.2.8")], ACTOR)

    task = asyncio.create_task(edit())
    while ticks < 20:  # the loop keeps turning while the edit waits for the lock
        await asyncio.sleep(0.005)
        ticks += 1
    assert not task.done()
    other.execute("COMMIT")
    other.close()
    result = await task
    assert result.change_id > 0


async def test_one_edit_deletes_keeps_and_makes_rrsets(db: Database) -> None:
    """On PostgreSQL the whole write is one statement: each kind of change in one edit."""
    name = "mix.example"
    await _create(db, name)
    async with db.transaction() as tx:
        await store.apply_changes(tx, f"{name}.", [
            put(name, "a", "A", "192.0.2.1"), put(name, "b", "A", "192.0.2.2"),
            put(name, "c", "TXT", '"c"')], ACTOR)
    async with db.transaction() as tx:
        result = await store.apply_changes(tx, f"{name}.", [
            drop(name, "a", "A"),                                    # gone
            put(name, "b", "A", "192.0.2.3", "192.0.2.4", ttl=60),  # kept: new TTL and records
            put(name, "c", "TXT", '"c"'),                            # unchanged
            put(name, "d", "AAAA", "2001:db8::1", "2001:db8::2"),    # made
            put(name, "e", "A", "192.0.2.5")], ACTOR)                # made
    async with db.read() as session:
        zone = (await session.execute(select(Zone).where(Zone.name == f"{name}."))).scalar_one()
        sets = await store.current_rrsets(session, zone.id)
        change = await session.get(ZoneChange, result.change_id)
    assert {k: (v.ttl, v.rdata_texts()) for k, v in sets.items() if k[1] != 2} == {
        (f"b.{name}.", 1): (60, ("192.0.2.3", "192.0.2.4")),
        (f"c.{name}.", 16): (300, ('"c"',)),
        (f"d.{name}.", 28): (300, ("2001:db8::1", "2001:db8::2")),
        (f"e.{name}.", 1): (300, ("192.0.2.5",)),
        (f"www.{name}.", 1): (300, ("192.0.2.1",)),
    }
    assert change is not None and zone.serial == result.serial == change.serial
    assert {i[0] for i in change.diff["removed"]} == {f"a.{name}.", f"b.{name}."}
    assert len(change.diff["added"]) == 5


async def test_transactions_of_one_queue_run_one_after_the_other(db: Database) -> None:
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with db.transaction(queue="zone:q.example.") as tx:
            await tx.fetch("SELECT 1")
            order.append("first in")
            first_in.set()
            await release.wait()
            order.append("first out")

    async def second(queue: str) -> None:
        await first_in.wait()
        async with db.transaction(queue=queue) as tx:
            await tx.fetch("SELECT 1")
            order.append(f"{queue} in")

    task = asyncio.create_task(first())
    same = asyncio.create_task(second("zone:q.example."))
    other = asyncio.create_task(second("zone:other.example."))
    await first_in.wait()
    for _ in range(20):
        await asyncio.sleep(0.002)
    if db.is_postgres:  # another zone does not wait (SQLite has one writer at a time)
        assert "zone:other.example. in" in order
    assert "zone:q.example. in" not in order
    release.set()
    await asyncio.gather(task, same, other)
    assert order.index("first out") < order.index("zone:q.example. in")


@pytest.mark.parametrize("through", ["driver", "session"])
async def test_edits_next_to_a_dname_follow_the_zone_rules(db: Database, through: str) -> None:
    """An edit reads only near the edited names: a DNAME above one is at an ancestor."""
    name = "dn.example"
    await _create(db, name)
    await _edit(db, through, [put(name, "old", "DNAME", "new.example."),
                              put(name, "a.sub", "A", "192.0.2.1")])
    with pytest.raises(ZoneConflict):  # data below a DNAME
        await _edit(db, through, [put(name, "x.old", "A", "192.0.2.2")])
    with pytest.raises(ZoneConflict):  # a DNAME above data (the whole zone is read)
        await _edit(db, through, [put(name, "sub", "DNAME", "else.example.")])
    result = await _edit(db, through, [put(name, "oldish", "A", "192.0.2.3")])
    assert result.change_id > 0


async def _edit(db: Database, through: str, changes: list[store.RRsetChange]
                ) -> store.WriteResult:
    if through == "driver":
        async with db.transaction() as tx:
            return await store.apply_changes(tx, "dn.example.", changes, ACTOR)
    async with db.write() as session:
        return await store.apply_changes(session, "dn.example.", changes, ACTOR)


async def test_sqlite_checkpoints_run_every_so_many_commits_off_the_loop(
    db: Database, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not db.is_sqlite:
        pytest.skip("SQLite's WAL")
    monkeypatch.setattr(driver, "CHECKPOINT_EVERY", 5)
    await _create(db, "wal.example")
    path = Path(str(make_url(db.url).database))

    async def edits(first: int, count: int) -> None:
        for i in range(first, first + count):
            async with db.transaction() as tx:
                await store.apply_changes(
                    tx, "wal.example.", [put("wal.example", "www", "A", f"192.0.2.{i}")], ACTOR)

    await edits(1, 1)  # the driver's writer opens now: counting starts
    before = path.read_bytes()
    await edits(2, 3)  # commits 2-4: in the WAL only
    assert path.read_bytes() == before
    await edits(5, 1)  # commit 5: a checkpoint copies the WAL into the database
    await db.close()  # waits for it
    assert path.read_bytes() != before


# --- PostgreSQL: an edit planned outside a transaction, written in one statement ---

async def _zone_state(db: Database, name: str) -> tuple[int, dict[tuple[str, int], tuple[str, ...]],
                                                         int]:
    async with db.read() as session:
        zone = (await session.execute(select(Zone).where(Zone.name == f"{name}."))).scalar_one()
        sets = await store.current_rrsets(session, zone.id)
        changes = len((await session.execute(select(ZoneChange.id))).all())
    return zone.serial, {k: v.rdata_texts() for k, v in sets.items()}, changes


async def test_an_edit_outside_a_transaction_writes_as_one_inside_does(db: Database) -> None:
    created = await _create(db, "free.example")
    async with db.statements(queue="zone:free.example.") as tx:
        if tx is None:
            assert not db.is_postgres
            pytest.skip("PostgreSQL only: elsewhere edits run in a transaction")
        assert not tx.in_transaction
        zone = await store.lock_zone(tx, "free.example.")
        assert zone is not None and zone.serial == created.serial
        result = await store.apply_changes(
            tx, zone, [put("free.example", "www", "A", "192.0.2.7"),
                       put("free.example", "new", "TXT", '"n"')], ACTOR)
    serial, sets, _ = await _zone_state(db, "free.example")
    assert serial == result.serial > created.serial
    assert sets[("www.free.example.", 1)] == ("192.0.2.7",)
    assert sets[("new.free.example.", 16)] == ('"n"',)
    async with db.read() as session:
        events = await feed.changes_after(session, created.change_id)
    assert [(e.id, e.serial) for e in events] == [(result.change_id, result.serial)]


async def test_an_edit_planned_before_another_write_writes_nothing(db: Database) -> None:
    created = await _create(db, "race.example")
    async with db.statements(queue="zone:race.example.") as tx:
        if tx is None:
            pytest.skip("PostgreSQL only")
        zone = await store.lock_zone(tx, "race.example.")
        assert zone is not None
        async with db.transaction() as other:  # another process's write, between read and write
            await store.apply_changes(other, "race.example.",
                                      [put("race.example", "www", "A", "192.0.2.2")], ACTOR)
        before = await _zone_state(db, "race.example")
        with pytest.raises(store.ZoneChanged):
            await store.apply_changes(tx, zone, [put("race.example", "www", "A", "192.0.2.3")],
                                      ACTOR)
    assert await _zone_state(db, "race.example") == before
    assert before[0] > created.serial and before[1][("www.race.example.", 1)] == ("192.0.2.2",)


@pytest.mark.parametrize("other_commits", [True, False])
async def test_an_edit_that_waits_for_the_zone_lock_sees_what_it_waited_for(
    db: Database, other_commits: bool
) -> None:
    """The write's snapshot predates its wait for the lock: it must not write
    over a change committed meanwhile (and must write if that was rolled back)."""
    await _create(db, "wait.example")
    async with db.statements(queue="zone:wait.example.") as tx:
        if tx is None:
            pytest.skip("PostgreSQL only")
        zone = await store.lock_zone(tx, "wait.example.")
        assert zone is not None
        other_cm = db.transaction()
        other = await other_cm.__aenter__()
        await store.apply_changes(other, "wait.example.",
                                  [put("wait.example", "www", "A", "192.0.2.2")], ACTOR)
        mine = asyncio.create_task(store.apply_changes(
            tx, zone, [put("wait.example", "www", "A", "192.0.2.3")], ACTOR))
        while not await db.fetch(  # until the write waits for the zone's lock
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%WITH z AS MATERIALIZED%'"):
            assert not mine.done()
            await asyncio.sleep(0.01)
        if other_commits:
            await other_cm.__aexit__(None, None, None)
            with pytest.raises(store.ZoneChanged):
                await mine
        else:
            await other_cm.__aexit__(RuntimeError, RuntimeError("rolled back"), None)
            result = await mine
    serial, sets, _ = await _zone_state(db, "wait.example")
    if other_commits:
        assert sets[("www.wait.example.", 1)] == ("192.0.2.2",)
    else:
        assert sets[("www.wait.example.", 1)] == ("192.0.2.3",) and serial == result.serial


async def test_an_edit_outside_a_transaction_checks_the_record_limit_first(db: Database) -> None:
    await _create(db, "full.example")
    async with db.statements(queue="zone:full.example.") as tx:
        if tx is None:
            pytest.skip("PostgreSQL only")
        zone = await store.lock_zone(tx, "full.example.")
        assert zone is not None
        before = await _zone_state(db, "full.example")
        with pytest.raises(store.ZoneFull):  # 2 records stored, 2 more, limit 3
            await store.apply_changes(tx, zone, [put("full.example", "x", "A", "192.0.2.8",
                                                     "192.0.2.9")], ACTOR, max_records=3)
        assert await _zone_state(db, "full.example") == before
        result = await store.apply_changes(tx, zone, [put("full.example", "x", "A", "192.0.2.8")],
                                           ACTOR, max_records=3)
    assert (await _zone_state(db, "full.example"))[0] == result.serial
