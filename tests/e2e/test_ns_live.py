"""Zone changes while serving: the next query sees them (the reply cache included)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from storage.snapshot import StoredRRset
from tests.e2e.ns_fixtures import NsServer, serving
from tests.unit.nameserver.zones import CHILD, snapshot


@pytest.fixture
def fresh_ns() -> Iterator[NsServer]:
    with serving() as server:
        yield server


def a_rrset(name: str, ttl: int, *addresses: str) -> StoredRRset:
    return StoredRRset(name, 1, ttl, tuple(socket.inet_aton(a) for a in addresses))


def test_rrset_edit_is_served_at_once_over_udp_and_tcp(fresh_ns: NsServer) -> None:
    assert fresh_ns.udp("www.zh.test").answer[0].ttl == 300  # now cached
    assert fresh_ns.tcp("www.zh.test").answer[0].ttl == 300
    fresh_ns.call(lambda: fresh_ns.table.apply_rrsets(
        "zh.test.", 8, [a_rrset("www.zh.test.", 60, "192.0.2.99")], []
    ))
    for reply in (fresh_ns.udp("www.zh.test"), fresh_ns.tcp("www.zh.test")):
        assert reply.answer[0].ttl == 60
        assert [rd.to_text() for rd in reply.answer[0]] == ["192.0.2.99"]


def test_new_and_deleted_names(fresh_ns: NsServer) -> None:
    assert fresh_ns.udp("new.zh.test").rcode() == dns.rcode.NXDOMAIN
    fresh_ns.call(lambda: fresh_ns.table.apply_rrsets(
        "zh.test.", 8, [a_rrset("new.zh.test.", 60, "192.0.2.77")], [("mail.zh.test.", 1)]
    ))
    assert fresh_ns.udp("new.zh.test").answer
    mail = fresh_ns.udp("mail.zh.test")
    assert mail.rcode() == dns.rcode.NOERROR and not mail.answer  # AAAA is still there


def test_whole_zone_replace_suspend_and_removal(fresh_ns: NsServer) -> None:
    fresh_ns.call(lambda: fresh_ns.table.remove_zone("child.zh.test."))
    referral = fresh_ns.udp("www.child.zh.test")
    assert not referral.answer and referral.authority  # the parent's delegation now
    fresh_ns.call(lambda: fresh_ns.table.replace_zone(snapshot(CHILD, "child.zh.test.", 3)))
    assert fresh_ns.udp("www.child.zh.test").answer
    fresh_ns.call(lambda: fresh_ns.table.set_active("zh.test.", False))
    assert fresh_ns.udp("www.zh.test").rcode() == dns.rcode.REFUSED
    assert fresh_ns.udp("www.child.zh.test").answer  # other zones unaffected


def test_soa_serial_bump_is_visible(fresh_ns: NsServer) -> None:
    soa = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.SOA, "ns1.zh.test. hostmaster.zh.test. 8 7200 3600 1209600 300"
    )
    fresh_ns.call(lambda: fresh_ns.table.apply_rrsets(
        "zh.test.", 8, [StoredRRset("zh.test.", 6, 3600, (soa.to_digestable(),))], []
    ))
    assert fresh_ns.udp("zh.test", "SOA").answer[0][0].serial == 8


EXAMPLE_NET = """
$ORIGIN example.net.
@   3600 IN SOA ns.example.net. hostmaster.example.net. 1 7200 3600 1209600 300
@   3600    NS  ns.example.net.
ns  3600    A   198.51.100.1
www 3600    A   198.51.100.2
"""


def test_cached_cname_chain_follows_an_edit_in_the_target_zone(fresh_ns: NsServer) -> None:
    before = fresh_ns.udp("cback.other.test")  # other.test -> zh.test, now cached
    assert "192.0.2.10" in before.to_text()
    fresh_ns.call(lambda: fresh_ns.table.apply_rrsets(
        "zh.test.", 8, [a_rrset("www.zh.test.", 60, "192.0.2.98")], []
    ))
    after = fresh_ns.udp("cback.other.test")
    assert "192.0.2.98" in after.to_text() and "192.0.2.10" not in after.to_text()


def test_adding_a_zone_changes_cached_answers_elsewhere(fresh_ns: NsServer) -> None:
    assert fresh_ns.udp("www.example.net").rcode() == dns.rcode.REFUSED
    assert len(fresh_ns.udp("cout.zh.test").answer) == 1  # CNAME out of every hosted zone
    fresh_ns.call(lambda: fresh_ns.table.replace_zone(snapshot(EXAMPLE_NET, "example.net.", 9)))
    assert fresh_ns.udp("www.example.net").answer
    assert len(fresh_ns.udp("cout.zh.test").answer) == 2  # now followed into example.net.


def test_edit_in_one_zone_leaves_other_answers_right(fresh_ns: NsServer) -> None:
    assert fresh_ns.udp("www.other.test").answer
    fresh_ns.call(lambda: fresh_ns.table.apply_rrsets(
        "other.test.", 2, [a_rrset("www.other.test.", 60, "198.51.100.81")], []
    ))
    assert fresh_ns.udp("www.other.test").answer[0].ttl == 60
    assert fresh_ns.udp("www.zh.test").answer[0].ttl == 300
    fresh_ns.call(lambda: fresh_ns.table.set_active("other.test.", False))
    assert fresh_ns.udp("www.other.test").rcode() == dns.rcode.REFUSED
    assert len(fresh_ns.udp("cother.zh.test").answer) == 1  # chain stops at the suspended zone
