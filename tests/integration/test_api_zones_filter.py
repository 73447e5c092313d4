"""GET /zones/{zone}/rrsets?name=...&type=... reads only what the filter
keeps (in SQL), and answers byte for byte what filtering the whole list
does: the same items in the same order, the same total, paging and ETag.

The zone has many names, among them the apex, IDN (xn--) labels, escaped
characters, a wildcard, underscores and names that sort next to each other;
each filtered answer is compared with the unfiltered list, filtered here
as the route did before it filtered in SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select, update

from storage import zones as store
from storage.db import Database
from storage.dnsdata import InvalidName, owner_name, zone_from_text, zone_origin
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
from zoneapi.jsonio import dumps

Z = "/api/v1/zones/many.example"
ORIGIN = zone_origin("many.example")
SPECIAL = """\
@ 300 IN TXT "apex text"
@ 300 IN AAAA 2001:db8::1
xn--bcher-kva 300 IN A 192.0.2.10
xn--bcher-kva 300 IN TXT "idn"
sub.xn--bcher-kva 300 IN A 192.0.2.11
a\\.b 300 IN TXT "escaped dot"
sp\\032ace 300 IN TXT "escaped space"
q\\"uote 300 IN TXT "escaped quote"
* 300 IN TXT "wildcard"
*.w 300 IN A 192.0.2.12
_dmarc 300 IN TXT "v=DMARC1; p=none"
_443._tcp.www 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
a 300 IN A 192.0.2.13
a-b 300 IN A 192.0.2.14
a.a 300 IN A 192.0.2.15
a0 300 IN A 192.0.2.16
www 300 IN AAAA 2001:db8::2
www 300 IN TXT "b" "a"
mx2 300 IN MX 20 mail.many.example.
mx2 300 IN MX 10 www.many.example.
"""
NAMES = 400  # h0..h399, one to three RRsets each


@dataclass
class World:
    api: ApiServer
    token: str


@pytest.fixture
async def world(db: Database) -> AsyncIterator[World]:
    async with running_api(db, api_config()) as api:
        leader = await seed_account(api, "acme")
        await allowlist(api, leader, ["127.0.0.0/8"])
        text = ZONE_TEXT.format(origin=ORIGIN.to_text()) + SPECIAL + "".join(
            f"h{i} 300 IN A 10.0.{i // 256}.{i % 256}\n"
            + (f"h{i} 600 IN TXT \"t{i}\"\n" if i % 3 == 0 else "")
            + (f"h{i} 300 IN AAAA 2001:db8::{i:x}\n" if i % 7 == 0 else "")
            for i in range(NAMES))
        async with api.db.write() as session:
            await store.replace_zone(session, zone_from_text(text, ORIGIN), store.OPERATOR)
            await session.execute(update(Zone).where(Zone.name == ORIGIN.to_text()).values(
                account_id=leader.account_id))
        yield World(api, await seed_token(api, leader))


def _owner(name: str) -> str | None:
    try:
        return owner_name(name, ORIGIN).to_text()
    except InvalidName:
        return None


async def test_filtered_lists_are_the_whole_list_filtered(world: World) -> None:
    c, t = world.api.client, world.token
    whole = await c.call("GET", Z + "/rrsets", token=t, params={"limit": "5000"})
    assert whole.status == 200
    items = whole.body["items"]
    assert whole.body["total"] == len(items) > NAMES + 20
    assert whole.body["next_offset"] is None
    names = sorted({i["name"] for i in items})
    assert "xn--bcher-kva.many.example." in names and "a\\.b.many.example." in names
    every = [*[i["subname"] for i in items], *names]  # every name, relative and absolute
    queries = [
        "@", "", "many.example", "MANY.EXAMPLE.", "www", "WWW", "bücher", "xn--bcher-kva",
        "sub.bücher", "a\\.b", "sp ace", "sp\\032ace", "q\"uote", "*", "*.w", "x.w", "a",
        "a-b", "a.a", "a0", "_dmarc", "_443._tcp.www", "mx2", "h0", "h21", "h399",
        "nothing", "h400", "h1.h1",
    ]
    types = ["A", "a", "TXT", "aaaa", "SOA", "soa", "MX", "TLSA", "NS", "TYPE1", "type16",
             "CNAME", "bogus", "TYPE65534", "TYPE99999"]
    combos = [*[(name, None) for name in dict.fromkeys(every)],
              *[(None, rdtype) for rdtype in types],
              *[(name, rdtype) for name in queries for rdtype in types]]
    checked, found = 0, set()
    for name, rdtype in combos:
        owner = _owner(name) if name else None  # "": no filter, as before
        if name and owner is None:
            continue  # refused with 422 before and after: below
        params = {"limit": "5000"}
        expected = items
        if name is not None:
            params["name"] = name
            if name:
                expected = [i for i in expected if i["name"] == owner]
        if rdtype is not None:
            params["type"] = rdtype
            expected = [i for i in expected if i["type"] == rdtype.upper()]
        got = await c.call("GET", Z + "/rrsets", token=t, params=params)
        assert got.status == 200, (params, got.text)
        assert got.text == dumps({"items": expected, "total": len(expected),
                                  "next_offset": None}), params
        assert got.headers["ETag"] == whole.headers["ETag"]
        checked += 1
        if expected and name:
            found.add(name)
    assert checked > 1200
    assert {"@", "MANY.EXAMPLE.", "bücher", "sub.bücher", "*", "*.w", "_443._tcp.www",
            "xn--bcher-kva.many.example."} <= found


async def test_filtered_pages(world: World) -> None:
    c, t = world.api.client, world.token
    whole = (await c.call("GET", Z + "/rrsets", token=t, params={"limit": "5000"})).body
    for params, field, value in [
        ({"type": "A"}, "type", "A"),
        ({"type": "txt"}, "type", "TXT"),
        ({"name": "@"}, "name", "many.example."),
        ({"name": "h21"}, "name", "h21.many.example."),
    ]:
        expected = [i for i in whole["items"] if i[field] == value]
        assert expected
        for limit in (1, 2, 7, 100):
            offsets = list(range(0, len(expected) + 2, limit))
            for offset in (*offsets[:12], *offsets[-3:], 99_999_999):
                page = {**params, "limit": str(limit), "offset": str(offset)}
                got = await c.call("GET", Z + "/rrsets", token=t, params=page)
                more = offset + limit < len(expected)
                assert got.text == dumps({
                    "items": expected[offset:offset + limit], "total": len(expected),
                    "next_offset": offset + limit if more else None}), page
        # An offset of 10 digits or more is read as 0, as before.
        got = await c.call("GET", Z + "/rrsets", token=t,
                           params={**params, "limit": "2", "offset": str(10**9)})
        assert got.text == dumps({"items": expected[:2], "total": len(expected),
                                  "next_offset": 2 if len(expected) > 2 else None})


async def test_filters_refuse_what_they_refused(world: World) -> None:
    c, t = world.api.client, world.token
    bad = await c.call("GET", Z + "/rrsets", token=t, params={"name": "a..b"})
    assert bad.status == 422 and bad.code == "invalid_name"
    outside = await c.call("GET", Z + "/rrsets", token=t, params={"name": "www.other.example."})
    assert outside.status == 422 and outside.code == "invalid_name"
    for escaped in ("a\\.b", "sp\\032ace", "sp ace", 'q"uote'):  # stored, but not askable
        got = await c.call("GET", Z + "/rrsets", token=t, params={"name": escaped})
        assert got.status == 422 and got.code == "invalid_name", escaped
    long_type = await c.call("GET", Z + "/rrsets", token=t, params={"type": "X" * 17})
    assert long_type.status == 400 and long_type.code == "invalid_query"
    # The zone's existence and the caller's access are told before any of that.
    hidden = await c.call("GET", "/api/v1/zones/other.example/rrsets", token=t,
                          params={"name": "a..b"})
    assert hidden.status == 404


async def test_a_filter_reads_only_what_it_keeps(world: World) -> None:
    """An RRset whose stored rdata does not parse (3 bytes for an address)
    stops any answer that reads it, as the whole list once did for every
    filter: a filter that leaves it out answers."""
    c, t, db = world.api.client, world.token, world.api.db
    async with db.write() as session:
        poison = select(RRset.id).where(RRset.name == "h5.many.example.", RRset.rdtype == 1)
        await session.execute(update(Record).where(Record.rrset_id.in_(poison))
                              .values(wire=b"\x00\x01\x02"))
    for params, total in [({"name": "h6"}, 2), ({"name": "h6", "type": "A"}, 1),
                          ({"name": "h5", "type": "TXT"}, 0), ({"type": "TXT"}, 142),
                          ({"name": "@", "type": "SOA"}, 1)]:
        got = await c.call("GET", Z + "/rrsets", token=t, params=params)
        assert got.status == 200 and got.body["total"] == total, (params, got.text)
