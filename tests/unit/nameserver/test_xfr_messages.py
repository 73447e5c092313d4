"""AXFR/IXFR message sequences, without sockets or a store."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset
import pytest

from nameserver.index import name_to_wire
from nameserver.rrwire import SOA, A
from nameserver.wire import parse_query
from nameserver.xfr import (
    RecordTooBig,
    Rr,
    incremental_chain,
    ixfr_records,
    pack_messages,
    reply_head,
    serial_gte,
)
from storage.feed import ChangeEvent

ORIGIN = dns.name.from_text("example.")
SOA_RDATA = dns.rdata.from_text("IN", "SOA", "ns1.example. hostmaster.example. 10 7200 3600 1209600 300")
assert isinstance(SOA_RDATA, dns.rdtypes.ANY.SOA.SOA)


def soa_rr(serial: int) -> Rr:
    wire = SOA_RDATA.replace(serial=serial).to_wire()
    assert wire is not None
    return name_to_wire("example."), SOA, 3600, wire


def a_rr(i: int) -> Rr:
    owner = name_to_wire(f"host{i}.example.")
    return owner, A, 300, ipaddress.IPv4Address(0xC0000200 + i % 250).packed


def query_wire(qtype: str = "AXFR", edns: bool = False) -> bytes:
    return dns.message.make_query("Example.", qtype, use_edns=0 if edns else False).to_wire()


def parse_all(wires: list[bytes]) -> list[dns.message.Message]:
    return [dns.message.from_wire(w, one_rr_per_rrset=True) for w in wires]


def texts(messages: list[dns.message.Message]) -> list[str]:
    return [
        f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)} {rrset[0]}"
        for m in messages for rrset in m.answer
    ]


def test_one_message_soa_first_and_last() -> None:
    query = parse_query(query_wire(edns=True))
    records = [soa_rr(10), a_rr(1), a_rr(2), soa_rr(10)]
    wires = list(pack_messages(reply_head(query), records, 16384))
    assert len(wires) == 1
    (message,) = parse_all(wires)
    assert message.id == query.id
    assert message.flags & dns.flags.QR and message.flags & dns.flags.AA
    assert message.question[0].name.to_text() == "Example."  # case as sent
    assert message.edns == 0  # OPT echoed in the first message
    assert texts([message]) == [
        "example. SOA ns1.example. hostmaster.example. 10 7200 3600 1209600 300",
        "host1.example. A 192.0.2.1",
        "host2.example. A 192.0.2.2",
        "example. SOA ns1.example. hostmaster.example. 10 7200 3600 1209600 300",
    ]


def test_big_zone_spans_messages_in_order() -> None:
    query = parse_query(query_wire(edns=True))
    records = [soa_rr(10), *(a_rr(i) for i in range(1, 2001)), soa_rr(10)]
    wires = list(pack_messages(reply_head(query), records, 4096))
    assert len(wires) > 5
    assert all(len(w) <= 4096 for w in wires)
    messages = parse_all(wires)
    assert len(messages[0].question) == 1
    assert all(len(m.question) == 0 for m in messages[1:])  # as NSD: question once
    assert all(m.edns == -1 for m in messages[1:])  # OPT only in the first
    lines = texts(messages)
    assert len(lines) == 2002
    assert lines[0] == lines[-1] and " SOA " in lines[0]
    assert lines[1:-1] == [f"host{i}.example. A 192.0.2.{i % 250}" for i in range(1, 2001)]


def test_owner_names_are_compressed() -> None:
    query = parse_query(query_wire())
    records = [soa_rr(10), *(a_rr(i) for i in range(1, 101)), soa_rr(10)]
    (wire,) = pack_messages(reply_head(query), records, 65535)
    uncompressed = sum(len(owner) + 10 + len(rdata) for owner, _, _, rdata in records)
    assert len(wire) < 12 + uncompressed * 0.85


def test_a_record_too_big_for_any_message() -> None:
    query = parse_query(query_wire())
    huge: Rr = (name_to_wire("example."), 16, 300, b"\xff" + b"x" * 65300)
    with pytest.raises(RecordTooBig):
        list(pack_messages(reply_head(query), [huge], 16384))


def event(serial: int, previous: int | None, kind: str = "update", full: bool = False,
          removed: tuple[tuple[str, int, int, str], ...] = (),
          added: tuple[tuple[str, int, int, str], ...] = ()) -> ChangeEvent:
    return ChangeEvent(
        id=serial, zone_id=1, zone_name="example.", serial=serial, previous_serial=previous,
        kind=kind, full_reload=full, created_at=datetime.now(UTC),
        removed=removed, added=added,
    )


HISTORY = [
    event(10, None, "create", True),
    event(11, 10),
    event(12, 11),
    event(13, 12),
]


@pytest.mark.parametrize(
    ("history", "client", "current", "expected"),
    [
        (HISTORY, 10, 13, [11, 12, 13]),
        (HISTORY, 12, 13, [13]),
        (HISTORY, 9, 13, None),  # older than the history
        (HISTORY, 77, 13, None),  # never ours
        (HISTORY, 11, 14, None),  # history does not reach the current serial
        (HISTORY[:2] + [event(12, 11, "replace", True), HISTORY[3]], 11, 13, None),
        (HISTORY[:2] + [event(12, 11, "status", True), HISTORY[3]], 10, 13, None),
        (HISTORY[:2] + [event(12, 11, "status", True), HISTORY[3]], 12, 13, [13]),
        (HISTORY[:2] + [HISTORY[3]], 10, 13, None),  # a gap
    ],
)
def test_incremental_chain(
    history: list[ChangeEvent], client: int, current: int, expected: list[int] | None
) -> None:
    chain = incremental_chain(history, client, current)
    assert (None if chain is None else [e.serial for e in chain]) == expected


def test_chain_follows_the_latest_incarnation() -> None:
    # deleted and created again: the old serials must not be reused
    history = [
        event(10, None, "create", True), event(11, 10),
        event(11, 11, "delete", True), event(12, None, "create", True), event(13, 12),
    ]
    assert incremental_chain(history, 10, 13) is None
    chain = incremental_chain(history, 12, 13)
    assert chain is not None and [e.serial for e in chain] == [13]


@pytest.mark.parametrize(
    ("a", "b", "gte"),
    [(5, 5, True), (6, 5, True), (5, 6, False), (1, 0xFFFFFFFF, True), (0xFFFFFFFF, 1, False)],
)
def test_serial_arithmetic(a: int, b: int, gte: bool) -> None:
    assert serial_gte(a, b) is gte


def test_ixfr_sequence() -> None:
    chain = [
        event(11, 10, removed=(("www.example.", 1, 300, "192.0.2.1"),),
              added=(("www.example.", 1, 300, "192.0.2.2"),)),
        event(12, 11, added=(("mail.example.", 15, 300, "10 mx.example."),)),
    ]
    soa = SOA_RDATA.replace(serial=12)
    assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
    records = list(ixfr_records(ORIGIN, 3600, soa, chain))
    query = parse_query(query_wire("IXFR"))
    messages = parse_all(list(pack_messages(reply_head(query), records, 16384)))
    serials = [
        rrset[0].serial if rrset.rdtype == dns.rdatatype.SOA else None
        for m in messages for rrset in m.answer
    ]
    assert serials == [12, 10, None, 11, None, 11, 12, None, 12]
    lines = texts(messages)
    assert lines[2] == "www.example. A 192.0.2.1"
    assert lines[4] == "www.example. A 192.0.2.2"
    assert lines[7] == "mail.example. MX 10 mx.example."
