"""The change feed: one row per transaction, ordered, serials monotonic."""

from __future__ import annotations

import asyncio

import pytest

from storage import feed
from storage import zones as store
from storage.db import Database
from storage.models import ZoneStatus
from storage.snapshot import load_zones
from storage.zones import OPERATOR, ZoneConflict
from tests.integration.zonedata import SOA, drop, origin, put, rrset


async def _create(db: Database, name: str) -> store.WriteResult:
    async with db.write() as session:
        return await store.create_zone(
            session, origin(name), SOA, OPERATOR,
            rrsets=[rrset(name, "@", "NS", "ns1.example.net."), rrset(name, "www", "A", "192.0.2.1")],
        )


async def test_each_write_is_one_feed_row_with_a_higher_serial(db: Database) -> None:
    created = await _create(db, "feed.example")
    async with db.write() as session:
        first = await store.apply_changes(
            session, "feed.example.", [put("feed.example", "www", "A", "192.0.2.2", "192.0.2.3")],
            OPERATOR,
        )
    async with db.write() as session:
        second = await store.apply_changes(
            session, "feed.example.",
            [put("feed.example", "mail", "A", "192.0.2.25"), drop("feed.example", "www", "A")],
            OPERATOR,
        )
    async with db.read() as session:
        events = await feed.changes_after(session, 0)
        assert await feed.last_change_id(session) == second.change_id
        assert [e.id for e in await feed.changes_after(session, created.change_id)] == [
            first.change_id, second.change_id,
        ]
    assert [e.id for e in events] == [created.change_id, first.change_id, second.change_id]
    assert [e.kind for e in events] == ["create", "update", "update"]
    serials = [e.serial for e in events]
    assert serials == sorted(serials) and len(set(serials)) == 3
    assert events[1].previous_serial == events[0].serial
    assert set(events[1].removed) == {("www.feed.example.", 1, 300, "192.0.2.1")}
    assert set(events[1].added) == {
        ("www.feed.example.", 1, 300, "192.0.2.2"), ("www.feed.example.", 1, 300, "192.0.2.3"),
    }
    assert {i[0] for i in events[2].removed} == {"www.feed.example."}


async def test_no_op_edit_writes_nothing(db: Database) -> None:
    await _create(db, "noop.example")
    async with db.write() as session:
        result = await store.apply_changes(
            session, "noop.example.", [put("noop.example", "www", "A", "192.0.2.1")], OPERATOR
        )
    assert result.change_id == 0
    async with db.read() as session:
        assert len(await feed.changes_after(session, 0)) == 1


async def test_cname_exclusivity_rejects_the_whole_transaction(db: Database) -> None:
    await _create(db, "cname.example")
    with pytest.raises(ZoneConflict):
        async with db.write() as session:
            await store.apply_changes(
                session, "cname.example.",
                [put("cname.example", "mail", "A", "192.0.2.9"),
                 put("cname.example", "www", "CNAME", "mail")],
                OPERATOR,
            )
    async with db.read() as session:
        (snapshot,) = await load_zones(session, ["cname.example."])
        assert len(await feed.changes_after(session, 0)) == 1
    assert {(r.name, r.rdtype) for r in snapshot.rrsets} == {
        ("cname.example.", 6), ("cname.example.", 2), ("www.cname.example.", 1),
    }


async def test_concurrent_writers_keep_serials_monotonic_in_feed_order(db: Database) -> None:
    await _create(db, "busy.example")
    await _create(db, "other.example")

    async def edit(i: int) -> None:
        zone = "busy.example" if i % 3 else "other.example"
        async with db.write() as session:
            await store.apply_changes(
                session, f"{zone}.", [put(zone, f"host{i}", "A", f"192.0.2.{i + 1}")], OPERATOR
            )

    await asyncio.gather(*(edit(i) for i in range(30)))
    async with db.read() as session:
        events = await feed.changes_after(session, 0)
        (busy,) = await load_zones(session, ["busy.example."])
    assert len(events) == 32
    for zone in ("busy.example.", "other.example."):
        serials = [e.serial for e in events if e.zone_name == zone]
        assert serials == sorted(serials) and len(set(serials)) == len(serials)
        chain = [(e.previous_serial, e.serial) for e in events if e.zone_name == zone][1:]
        assert all(prev is not None and prev < cur for prev, cur in chain)
    assert busy.serial == max(e.serial for e in events if e.zone_name == "busy.example.")
    assert sum(1 for r in busy.rrsets if r.name.startswith("host")) == 20


async def test_suspend_and_delete_reach_the_feed(db: Database) -> None:
    await _create(db, "life.example")
    async with db.write() as session:
        await store.set_zone_status(session, "life.example.", ZoneStatus.SUSPENDED, OPERATOR)
    async with db.read() as session:
        (snapshot,) = await load_zones(session, ["life.example."])
    assert snapshot.active is False
    async with db.write() as session:
        await store.delete_zone(session, "life.example.", OPERATOR)
    async with db.read() as session:
        events = await feed.changes_after(session, 0)
        assert await load_zones(session, ["life.example."]) == []
    assert [e.kind for e in events] == ["create", "status", "delete"]
    assert all(e.full_reload for e in events)


async def test_snapshot_holds_the_system_soa_and_wire_rdata(db: Database) -> None:
    await _create(db, "snap.example")
    async with db.read() as session:
        (snapshot,) = await load_zones(session)
    soa = next(r for r in snapshot.rrsets if r.rdtype == 6)
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    parsed = dns.rdata.from_wire(dns.rdataclass.IN, dns.rdatatype.SOA, soa.rdatas[0], 0, len(soa.rdatas[0]))
    assert parsed.serial == snapshot.serial  # type: ignore[attr-defined]
    www = next(r for r in snapshot.rrsets if r.name == "www.snap.example.")
    assert www.rdatas == (bytes([192, 0, 2, 1]),)


async def test_import_never_lowers_a_serial_the_file_carries(db: Database) -> None:
    from storage.dnsdata import masterfile

    text = "@ 300 IN SOA ns1 hostmaster 4000000000 7200 1800 86400 300\n@ 300 IN NS ns1.example.net.\n"
    content = masterfile.from_text(text, origin("ahead.example"))
    async with db.write() as session:
        created = await store.replace_zone(session, content, OPERATOR)
    assert created.serial == 4000000000
    async with db.write() as session:
        again = await store.replace_zone(session, content, OPERATOR)
    assert again.serial == 4000000001
