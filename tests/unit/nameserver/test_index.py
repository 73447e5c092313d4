"""ZoneIndex lookups and the ZoneTable update paths the feed follower uses."""

from __future__ import annotations

import asyncio

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from nameserver.index import InvalidZone, ZoneNotFound, ZoneTable, build_zone, name_to_wire
from storage.snapshot import StoredRRset, ZoneSnapshot
from tests.unit.nameserver.ask import ask, lines
from tests.unit.nameserver.zones import CHILD, PARENT, snapshot, table


def rrset(name: str, rdtype: str, ttl: int, *texts: str) -> StoredRRset:
    kind = dns.rdatatype.from_text(rdtype)
    rdatas = tuple(
        dns.rdata.from_text(dns.rdataclass.IN, kind, t).to_digestable() for t in texts
    )
    return StoredRRset(name, int(kind), ttl, rdatas)


def test_lookup_finds_encloser_cut_and_dname() -> None:
    zone = table().index.zones[name_to_wire("zh.test.")]
    found = zone.lookup(name_to_wire("a.b.wild.zh.test."))
    assert found.node is None
    assert found.closest_encloser == name_to_wire("wild.zh.test.")
    assert found.wildcard_name() == name_to_wire("*.wild.zh.test.")
    below_cut = zone.lookup(name_to_wire("x.ns1.sub.zh.test."))
    assert below_cut.cut == name_to_wire("sub.zh.test.")
    under_dname = zone.lookup(name_to_wire("www.dn.zh.test."))
    assert under_dname.dname == name_to_wire("dn.zh.test.") and under_dname.cut is None
    assert zone.lookup(name_to_wire("dn.zh.test.")).dname is None
    ent = zone.lookup(name_to_wire("c.ent.zh.test."))
    assert ent.node == ()


def test_most_specific_zone_wins() -> None:
    index = table().index
    child = index.find_zone(name_to_wire("www.child.zh.test."))
    assert child is not None and child.origin_text == "child.zh.test."
    ds = index.find_zone(name_to_wire("child.zh.test."), ds=True)
    assert ds is not None and ds.origin_text == "zh.test."
    assert index.find_zone(name_to_wire("www.example.net.")) is None


def test_zone_without_soa_is_rejected() -> None:
    with pytest.raises(InvalidZone):
        build_zone(ZoneSnapshot(1, "x.test.", 0, True, (rrset("x.test.", "NS", 300, "ns.x.test."),)))


def test_apply_rrsets_changes_one_rrset_and_bumps_version() -> None:
    zones = table()
    before = zones.index.zones[name_to_wire("zh.test.")]
    version = zones.version
    zones.apply_rrsets("zh.test.", 8, [rrset("www.zh.test.", "A", 60, "192.0.2.99")], [])
    assert zones.version == version + 1
    assert lines(ask(zones, "www.zh.test", "A").answer) == {"www.zh.test. 60 A 192.0.2.99"}
    # the old snapshot is untouched: queries in flight keep a consistent view
    assert len(before.nodes[name_to_wire("www.zh.test.")][0].records) == 2
    after = zones.index.zones[name_to_wire("zh.test.")]
    assert after.serial == 8 and after.record_count == before.record_count - 1


def test_apply_rrsets_adds_names_with_their_empty_non_terminals() -> None:
    zones = table()
    zones.apply_rrsets("zh.test.", 8, [rrset("a.new.branch.zh.test.", "TXT", 60, '"hi"')], [])
    assert ask(zones, "a.new.branch.zh.test", "TXT").answer
    ent = ask(zones, "new.branch.zh.test", "A")
    assert ent.rcode() == dns.rcode.NOERROR and not ent.answer


def test_deleting_the_last_rrset_removes_the_name_and_its_ents() -> None:
    zones = table()
    zones.apply_rrsets("zh.test.", 8, [], [("a.b.c.ent.zh.test.", 1)])
    assert ask(zones, "a.b.c.ent.zh.test", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask(zones, "c.ent.zh.test", "A").rcode() == dns.rcode.NXDOMAIN
    assert ask(zones, "ent.zh.test", "A").rcode() == dns.rcode.NXDOMAIN


def test_empty_rdatas_delete_and_delegations_follow_edits() -> None:
    zones = table()
    zones.apply_rrsets("zh.test.", 8, [rrset("sub.zh.test.", "NS", 3600)], [])
    assert not [r for r in zones.index.zones[name_to_wire("zh.test.")].cuts if b"sub" in r]
    reply = ask(zones, "ns1.sub.zh.test", "A")
    assert reply.answer and reply.flags & 0x0400  # glue is now ordinary, authoritative data
    zones.apply_rrsets("zh.test.", 9, [rrset("new.zh.test.", "NS", 60, "ns.example.net.")], [])
    referral = ask(zones, "x.new.zh.test", "A")
    assert not referral.answer and lines(referral.authority) == {
        "new.zh.test. 60 NS ns.example.net."
    }


def test_soa_edit_updates_the_negative_answer() -> None:
    zones = table()
    soa = rrset("zh.test.", "SOA", 100, "ns1.zh.test. hostmaster.zh.test. 8 7200 3600 1209600 900")
    zones.apply_rrsets("zh.test.", 8, [soa], [])
    assert lines(ask(zones, "nowhere.zh.test", "A").authority) == {
        "zh.test. 100 SOA ns1.zh.test. hostmaster.zh.test. 8 7200 3600 1209600 900"
    }


def test_replace_remove_and_suspend_zones() -> None:
    zones = ZoneTable.from_snapshots([snapshot(PARENT, "zh.test.", 2)])
    assert ask(zones, "www.child.zh.test", "A").authority  # referral from the parent
    zones.replace_zone(snapshot(CHILD, "child.zh.test.", 3))
    assert ask(zones, "www.child.zh.test", "A").answer
    zones.set_active("child.zh.test.", False)
    assert ask(zones, "www.child.zh.test", "A").rcode() == dns.rcode.REFUSED
    assert zones.remove_zone("child.zh.test.")
    assert not zones.remove_zone("child.zh.test.")
    assert ask(zones, "www.child.zh.test", "A").authority
    with pytest.raises(ZoneNotFound):
        zones.apply_rrsets("child.zh.test.", 1, [], [])


def test_names_with_escapes_are_indexed() -> None:
    assert name_to_wire("weird\\.label.zh.test.") == b"\x0bweird.label\x02zh\x04test\x00"
    assert name_to_wire("WWW.Zh.Test.") == b"\x03www\x02zh\x04test\x00"
    assert name_to_wire(".") == b"\x00"


def _many_names(count: int, address: str) -> ZoneSnapshot:
    soa = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA, "ns.many.test. h.many.test. 1 7200 3600 1209600 60"
    )
    rrsets = [StoredRRset("many.test.", 6, 3600, (soa.to_digestable(),))]
    wire = bytes(int(part) for part in address.split("."))
    rrsets += [StoredRRset(f"h{i}.many.test.", 1, 60, (wire,)) for i in range(count)]
    return ZoneSnapshot(9, "many.test.", 1, True, tuple(rrsets))


async def test_a_replaced_big_zone_is_freed_a_slice_at_a_time() -> None:
    zones = ZoneTable.from_snapshots([_many_names(12_000, "192.0.2.1")])
    held = zones.get("many.test.")  # e.g. an AXFR still reading it
    assert held is not None
    zones.replace_zone(_many_names(12_000, "192.0.2.2"))
    freed = zones.get("many.test.")
    assert freed is not None
    nodes = freed.nodes  # the dict only: the zone itself is not held
    del freed
    zones.replace_zone(_many_names(12_000, "192.0.2.3"))
    await asyncio.sleep(0)
    assert len(nodes) > 0  # not all at once ...
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not nodes:
            break
    assert len(nodes) == 0  # ... but over several loop turns
    assert len(held.nodes) == 12_001  # still in use: left alone
    assert lines(ask(zones, "h5.many.test", "A").answer) == {"h5.many.test. 60 A 192.0.2.3"}
