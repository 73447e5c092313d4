"""The single-RRset routes read only near the RRset they name, never the
whole zone, and still refuse what they refused when they read it all.

The zone holds a few thousand RRsets and one of them, `poison A`, is stored
with rdata that does not parse: a request that read (and parsed) the whole
zone, as POST /rrsets once did, would answer 500. Every answer below is the
one the zone rules, the limits and the RRset's existence call for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.name
import dns.rdatatype
import pytest
from sqlalchemy import func, select, update

from storage import zones as store
from storage.db import Database
from storage.dnsdata import API_RULES, parse_rrset, zone_from_text, zone_origin
from storage.models import Record, RRset, Zone
from tests.integration.test_api_harness import (
    ZONE_TEXT,
    ApiServer,
    allowlist,
    api_config,
    running_api,
    seed_account,
    seed_token,
)

Z = "/api/v1/zones/big.example"
SIZE = 3000  # RRsets besides the few below
LIMIT = SIZE + 60  # records in the zone


@dataclass
class World:
    api: ApiServer
    token: str


async def _records(db: Database) -> int:
    async with db.read() as session:
        return int((await session.execute(
            select(func.count(Record.id)).join(RRset, RRset.id == Record.rrset_id)
            .join(Zone, Zone.id == RRset.zone_id).where(Zone.name == "big.example.")
        )).scalar_one())


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    async with running_api(db, api_config(max_records_per_zone=LIMIT)) as api:
        leader = await seed_account(api, "acme")
        await allowlist(api, leader, ["127.0.0.0/8"])
        origin = zone_origin("big.example")
        text = ZONE_TEXT.format(origin=origin.to_text()) + "".join(
            f"h{i} 300 IN A 10.0.{i // 256}.{i % 256}\n" for i in range(SIZE)) + (
            "alias 300 IN CNAME www\n"
            "old 300 IN DNAME elsewhere.example.\n"
            "a.deep 300 IN A 192.0.2.8\n"
            "poison 300 IN A 192.0.2.9\n")
        async with api.db.write() as session:
            await store.replace_zone(session, zone_from_text(text, origin), store.OPERATOR)
            await session.execute(update(Zone).where(Zone.name == origin.to_text()).values(
                account_id=leader.account_id))
            poison = select(RRset.id).where(RRset.name == "poison.big.example.")
            await session.execute(update(Record).where(Record.rrset_id.in_(poison))
                                  .values(wire=b"\x00\x01\x02"))  # 3 bytes: no IPv4 address
        yield World(api, await seed_token(api, leader))


async def test_create_in_a_big_zone_refuses_what_the_rules_refuse(world: World) -> None:
    c, t = world.api.client, world.token

    async def create(name: str, rdtype: str, *records: str) -> tuple[int, str | None]:
        reply = await c.call("POST", Z + "/rrsets", token=t, json_body={
            "name": name, "type": rdtype, "ttl": 300, "records": list(records)})
        return reply.status, reply.code

    assert await create("www", "A", "192.0.2.3") == (409, "rrset_exists")
    assert await create("h17", "A", "192.0.2.3") == (409, "rrset_exists")
    # CNAME and other data at one name, either way round.
    assert await create("www", "CNAME", "h1.big.example.") == (422, "zone_conflict")
    assert await create("alias", "TXT", '"x"') == (422, "zone_conflict")
    # Below a DNAME, and a new DNAME above existing names (read from the whole zone's names).
    assert await create("x.old", "A", "192.0.2.4") == (422, "zone_conflict")
    assert await create("deep", "DNAME", "elsewhere.example.") == (422, "zone_conflict")
    # The same checks pass what they should, next to the unreadable RRset too.
    assert await create("new", "A", "192.0.2.5") == (201, None)
    assert await create("poison", "AAAA", "2001:db8::9") == (201, None)
    assert await create("free", "DNAME", "elsewhere.example.") == (201, None)
    got = await c.call("GET", Z + "/rrsets/new/A", token=t)
    assert got.status == 200 and got.body["records"] == ["192.0.2.5"]
    assert (await c.call("GET", Z + "/rrsets/h2999/A", token=t)).body["records"] == \
        ["10.0.11.183"]
    assert (await c.call("GET", Z + "/rrsets/nothing/A", token=t)).status == 404
    dry = await c.call("POST", Z + "/rrsets", token=t, params={"dry_run": "true"}, json_body={
        "name": "h5", "type": "A", "records": ["192.0.2.6"]})
    assert dry.status == 409 and dry.code == "rrset_exists"


async def test_single_record_and_delete_routes_in_a_big_zone(world: World) -> None:
    c, t = world.api.client, world.token
    assert (await c.call("DELETE", Z + "/rrsets/nothing/A", token=t)).code == "rrset_not_found"
    gone = await c.call("DELETE", Z + "/rrsets/h3/A", token=t)
    assert gone.status == 200 and [r["content"] for r in gone.body["diff"]["removed"]] == \
        ["10.0.0.3"]
    added = await c.call("POST", Z + "/rrsets/h4/A/records", token=t,
                         json_body={"content": "192.0.2.40"})
    assert added.status == 200
    assert (await c.call("GET", Z + "/rrsets/h4/A", token=t)).body["records"] == \
        ["10.0.0.4", "192.0.2.40"]
    missing = await c.call("DELETE", Z + "/rrsets/nothing/A/records", token=t,
                           params={"content": "192.0.2.1"})
    assert missing.code == "rrset_not_found"
    wrong = await c.call("DELETE", Z + "/rrsets/h4/A/records", token=t,
                         params={"content": "192.0.2.41"})
    assert wrong.code == "record_not_found"
    removed = await c.call("DELETE", Z + "/rrsets/h4/A/records", token=t,
                           params={"content": "10.0.0.4"})
    assert removed.status == 200
    assert (await c.call("GET", Z + "/rrsets/h4/A", token=t)).body["records"] == ["192.0.2.40"]
    cname = await c.call("POST", Z + "/rrsets/h6/CNAME/records", token=t,
                         json_body={"content": "www.big.example."})
    assert cname.status == 422 and cname.code == "zone_conflict"


async def test_the_record_limit_holds_for_single_rrset_edits(world: World) -> None:
    c, t, db = world.api.client, world.token, world.api.db
    room = LIMIT - await _records(db)
    assert 3 < room < 255

    def addresses(n: int) -> list[str]:
        return [f"198.51.100.{i}" for i in range(1, n + 1)]

    over = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "many", "type": "A", "records": addresses(room + 1)})
    assert over.status == 422 and over.code == "too_many_records"
    # A PUT that replaces one record with more grows the zone as much.
    grow = await c.call("PUT", Z + "/rrsets/h8/A", token=t,
                        json_body={"records": addresses(room + 2)})
    assert grow.status == 422 and grow.code == "too_many_records"
    fits = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "many", "type": "A", "records": addresses(room)})
    assert fits.status == 201 and await _records(db) == LIMIT
    more = await c.call("POST", Z + "/rrsets/h9/A/records", token=t,
                        json_body={"content": "192.0.2.90"})
    assert more.status == 422 and more.code == "too_many_records"
    same_size = await c.call("PUT", Z + "/rrsets/h9/A", token=t,
                             json_body={"records": ["192.0.2.91"]})
    assert same_size.status == 200 and await _records(db) == LIMIT


async def test_the_record_limit_sees_other_writers(world: World) -> None:
    """A count this process read or wrote holds only at the serial it was read at:
    another writer's change (here storage's own, as an import or another API
    process makes) is counted again."""
    c, t, db = world.api.client, world.token, world.api.db
    room = LIMIT - await _records(db)
    one = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "first", "type": "A", "records": ["192.0.2.1", "192.0.2.2"]})
    assert one.status == 201  # its count is known after this write
    origin = zone_origin("big.example")
    owner = dns.name.from_text("elsewhere", origin)
    filler = parse_rrset(origin, owner, dns.rdatatype.TXT, 300,
                         [f'"{i}"' for i in range(room - 2)], API_RULES)
    async with db.write() as session:
        await store.apply_changes(session, "big.example.", [
            store.RRsetChange(owner, dns.rdatatype.TXT, filler)], store.OPERATOR)
    assert await _records(db) == LIMIT
    full = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "last", "type": "A", "records": ["192.0.2.3"]})
    assert full.status == 422 and full.code == "too_many_records"
    swap = await c.call("PUT", Z + "/rrsets/first/A", token=t,
                        json_body={"records": ["192.0.2.4", "192.0.2.5"]})
    assert swap.status == 200 and await _records(db) == LIMIT


async def test_the_record_limit_sees_a_zone_hosted_again(world: World) -> None:
    """A zone deleted and hosted again under its name can get the same id back
    (SQLite reuses the largest rowid) and come to the same serial: the count
    this process remembered for the first one must not serve the second."""
    c, t, db = world.api.client, world.token, world.api.db
    one = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "first", "type": "A", "records": ["192.0.2.1"]})
    assert one.status == 201  # this process now knows the zone's count at this serial
    serial = one.body["serial"]
    async with db.read() as session:
        old = (await session.execute(select(Zone).where(Zone.name == "big.example."))
               ).scalar_one()
        zone_id, account_id, created_at = old.id, old.account_id, old.created_at
        mname, rname = old.soa_mname, old.soa_rname
    async with db.write() as session:
        await store.delete_zone(session, "big.example.", store.OPERATOR)
    # Hosted again: the same id and, once its import is done, the same serial,
    # but a zone that is full.
    origin = zone_origin("big.example")
    text = ZONE_TEXT.format(origin=origin.to_text()) + "".join(
        f"full{i} 300 IN A 10.1.{i // 256}.{i % 256}\n" for i in range(LIMIT - 5))  # ZONE_TEXT: 5 records
    async with db.write() as session:
        session.add(Zone(id=zone_id, name="big.example.", account_id=account_id, serial=1,
                         soa_mname=mname, soa_rname=rname))
        await session.flush()
        await store.replace_zone(session, zone_from_text(text, origin), store.OPERATOR)
        await session.execute(update(Zone).where(Zone.name == "big.example.")
                              .values(serial=serial))
    async with db.read() as session:
        again = (await session.execute(select(Zone).where(Zone.name == "big.example."))
                 ).scalar_one()
        assert (again.id, again.serial) == (zone_id, serial)
        assert again.created_at != created_at
    assert await _records(db) == LIMIT
    full = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "last", "type": "A", "records": ["192.0.2.3"]})
    assert full.status == 422 and full.code == "too_many_records"
    assert await _records(db) == LIMIT


async def test_a_growing_edit_at_a_known_serial_does_not_count_again(world: World) -> None:
    """On both backends the count this process wrote is used at the serial it
    wrote: shown by a record slipped in without moving the serial (no writer
    does that), which the next growing edit does not see."""
    c, t, db = world.api.client, world.token, world.api.db
    room = LIMIT - await _records(db)
    fill = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "fill", "type": "TXT", "records": [f'"{i}"' for i in range(room - 1)]})
    assert fill.status == 201 and await _records(db) == LIMIT - 1
    async with db.write() as session:
        rrset_id = (await session.execute(select(RRset.id).where(
            RRset.name == "fill.big.example."))).scalar_one()
        session.add(Record(rrset_id=rrset_id, content='"slipped"', wire=b"\x07slipped"))
    assert await _records(db) == LIMIT
    unseen = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "one", "type": "A", "records": ["192.0.2.1"]})
    assert unseen.status == 201 and await _records(db) == LIMIT + 1


async def test_a_dry_run_leaves_no_count_behind(world: World) -> None:
    """A dry run rolls its write back: the serial it would have written may
    then be written by another writer with other content, so the count it
    would have made is not remembered."""
    c, t, db = world.api.client, world.token, world.api.db
    room = LIMIT - await _records(db)
    dry = await c.call("POST", Z + "/rrsets", token=t, params={"dry_run": "true"}, json_body={
        "name": "dry", "type": "A", "records": ["192.0.2.1"]})
    assert dry.status == 201 and dry.body["dry_run"]
    origin = zone_origin("big.example")
    owner = dns.name.from_text("elsewhere", origin)
    filler = parse_rrset(origin, owner, dns.rdatatype.TXT, 300,
                         [f'"{i}"' for i in range(room)], API_RULES)
    async with db.write() as session:
        await store.apply_changes(session, "big.example.", [
            store.RRsetChange(owner, dns.rdatatype.TXT, filler)], store.OPERATOR)
        await session.execute(update(Zone).where(Zone.name == "big.example.")
                              .values(serial=dry.body["serial"]))  # the dry run's serial
    assert await _records(db) == LIMIT
    full = await c.call("POST", Z + "/rrsets", token=t, json_body={
        "name": "last", "type": "A", "records": ["192.0.2.3"]})
    assert full.status == 422 and full.code == "too_many_records"
