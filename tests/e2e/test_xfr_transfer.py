"""AXFR and IXFR from a real store over real sockets; dnspython is the secondary.

Every zone is written through storage (replace_zone, apply_changes), served
by the nameserver with the transfer service wired in, and read back with
dnspython's own transfer client, which checks the RFC 5936/1995 framing and
every TSIG on the way. One store and two primaries serve the module (one
open to 127.0.0.0/8, one for key holders only); each test has zones of its own.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig
import dns.tsigkeyring
import dns.versioned
import dns.xfr
import dns.zone
import pytest

from nameserver.xfr import TransferConfig
from tests.e2e.xfr_fixtures import (
    HOST,
    Primary,
    drop,
    edit,
    import_zone,
    put,
    run_primary,
    shared_database,
    soa_serial,
    tcp_exchange,
)

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
KEYRING = dns.tsigkeyring.from_text({"xfr-key": ("hmac-sha256", SECRET)})
OPEN = TransferConfig.from_texts(
    allow_transfer=["127.0.0.0/8", "::1"], tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"]
)
KEY_ONLY = TransferConfig.from_texts(
    allow_transfer=["10.0.0.0/8"], tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"]
)
ZONE = """
$TTL 3600
@       SOA   ns1 hostmaster 2024010100 7200 3600 1209600 300
@       NS    ns1
@       NS    ns2.example.net.
@       MX    10 mail
ns1     A     192.0.2.53
mail    A     192.0.2.25
mail    AAAA  2001:db8::25
www 300 A     192.0.2.80
www 300 A     192.0.2.81
txt     TXT   "hello" "world"
_sip._udp SRV 10 60 5060 mail
sub     NS    ns.sub
ns.sub  A     192.0.2.54
"""
ZONE_RECORDS = 13
_names = itertools.count()


def big_zone(count: int) -> str:
    lines = [ZONE]
    lines += [f"h{i} A 198.51.{i // 250}.{i % 250}" for i in range(count)]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_database(tmp_path_factory.mktemp("xfr")) as url:
        yield url


@pytest.fixture(scope="module")
def primary(store_url: str) -> Iterator[Primary]:
    with run_primary(store_url, OPEN) as server:
        yield server


@pytest.fixture(scope="module")
def keyed_primary(store_url: str) -> Iterator[Primary]:
    """Transfers only with the key: 127.0.0.1 is not in allow_transfer."""
    with run_primary(store_url, KEY_ONLY) as server:
        yield server


def new_zone(store_url: str, servers: list[Primary], text: str = ZONE) -> str:
    """Import a zone of its own for one test; wait until every server has it."""
    origin = f"z{next(_names)}.xfr.test."
    serial = import_zone(store_url, origin, text).serial
    for server in servers:
        server.wait_serial(origin, serial)
    return origin


@pytest.fixture
def origin(store_url: str, primary: Primary, keyed_primary: Primary) -> str:
    return new_zone(store_url, [primary, keyed_primary])


def axfr_zone(primary: Primary, origin: str, **kwargs: object) -> dns.zone.Zone:
    messages = dns.query.xfr(
        HOST, origin, port=primary.port, timeout=5, lifetime=30, relativize=False,
        **kwargs,  # type: ignore[arg-type]
    )
    return dns.zone.from_xfr(messages, relativize=False)


def records(zone: dns.zone.Zone) -> set[str]:
    return {
        f"{name} {rdataset.ttl} {dns.rdatatype.to_text(rdataset.rdtype)} {rdata}"
        for name, rdataset in zone.iterate_rdatasets()
        for rdata in rdataset
    }


def query_wire(
    origin: str, qtype: str, serial: int | None = None, keyname: str | None = None
) -> bytes:
    if serial is None:
        query = dns.message.make_query(origin, qtype)
    else:
        query = dns.xfr.make_query(dns.versioned.Zone(origin), serial=serial)[0]
    if keyname is not None:
        query.use_tsig(KEYRING, keyname)
    return query.to_wire()


def answers(replies: list[bytes]) -> list[dns.rrset.RRset]:
    """Every answer record of a transfer, one RRset per record, in order."""
    return [
        rr for wire in replies
        for rr in dns.message.from_wire(wire, one_rr_per_rrset=True).answer
    ]


def current_serial(primary: Primary, origin: str) -> int:
    reply = dns.query.udp(dns.message.make_query(origin, "SOA"), HOST, port=primary.port, timeout=5)
    return soa_serial(reply, origin)


def test_axfr_is_the_store_content(primary: Primary, origin: str) -> None:
    zone = axfr_zone(primary, origin)
    expected = dns.zone.from_text(ZONE, origin, relativize=False)
    serial = primary.serial(origin)
    assert serial is not None and serial > 2024010100  # the store's serial
    with_serial = {line.replace(" 2024010100 ", f" {serial} ") for line in records(expected)}
    assert records(zone) == with_serial


def test_axfr_soa_first_and_last(primary: Primary, origin: str) -> None:
    replies = tcp_exchange(HOST, primary.port, query_wire(origin, "AXFR"))
    rrs = answers(replies)
    assert rrs[0].rdtype == dns.rdatatype.SOA and rrs[-1].rdtype == dns.rdatatype.SOA
    assert sum(1 for rr in rrs if rr.rdtype == dns.rdatatype.SOA) == 2
    assert len(rrs) == ZONE_RECORDS + 1
    assert all(dns.message.from_wire(w).flags & dns.flags.AA for w in replies)


def test_big_zone_in_several_messages_each_signed(
    store_url: str, keyed_primary: Primary
) -> None:
    origin = new_zone(store_url, [keyed_primary], big_zone(3000))
    zone = axfr_zone(keyed_primary, origin, keyring=KEYRING, keyname="xfr-key")  # checks each TSIG
    assert len(records(zone)) == 3000 + ZONE_RECORDS
    replies = tcp_exchange(HOST, keyed_primary.port, query_wire(origin, "AXFR", keyname="xfr-key"))
    assert len(replies) > 3
    for wire in replies:
        assert dns.message.from_wire(wire, keyring=False).had_tsig


def test_unsigned_transfer_outside_the_acl_is_refused(keyed_primary: Primary, origin: str) -> None:
    (reply,) = tcp_exchange(HOST, keyed_primary.port, query_wire(origin, "AXFR"), count=1)
    message = dns.message.from_wire(reply)
    assert message.rcode() == dns.rcode.REFUSED
    assert not message.answer


@pytest.mark.parametrize(
    ("keyring", "keyname", "error"),
    [
        (dns.tsigkeyring.from_text({"xfr-key": ("hmac-sha256", "AAAAAAAAAAAAAAAAAAAAAA==")}),
         "xfr-key", dns.rcode.BADSIG),
        (dns.tsigkeyring.from_text({"other": ("hmac-sha256", SECRET)}), "other", dns.rcode.BADKEY),
    ],
)
def test_bad_tsig_is_notauth(
    keyed_primary: Primary, origin: str,
    keyring: dict[dns.name.Name, dns.tsig.Key], keyname: str, error: int,
) -> None:
    query = dns.message.make_query(origin, "AXFR")
    query.use_tsig(keyring, keyname)
    (reply,) = tcp_exchange(HOST, keyed_primary.port, query.to_wire(), count=1)
    message = dns.message.from_wire(reply, keyring=False)
    assert message.rcode() == dns.rcode.NOTAUTH
    assert message.tsig is not None
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    assert rdata.error == error
    assert not message.answer


@pytest.mark.parametrize("qname", ["not-hosted.test.", "www.{origin}"])
def test_not_a_zone_apex_is_notauth(primary: Primary, origin: str, qname: str) -> None:
    query = dns.message.make_query(qname.format(origin=origin), "AXFR")
    (reply,) = tcp_exchange(HOST, primary.port, query.to_wire(), count=1)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOTAUTH


def soa_serial_of(zone: dns.versioned.Zone) -> int:
    with zone.reader() as txn:
        rdataset = txn.get(dns.name.empty, dns.rdatatype.SOA)
        return int(rdataset[0].serial)


def records_of(zone: dns.versioned.Zone) -> set[str]:
    out = set()
    with zone.reader() as txn:
        for name, rdataset in txn.iterate_rdatasets():
            for rdata in rdataset:
                absolute = name.derelativize(zone.origin)
                text = rdata.to_text(origin=zone.origin, relativize=False)
                out.add(f"{absolute} {rdataset.ttl} {dns.rdatatype.to_text(rdataset.rdtype)} {text}")
    return out


def test_ixfr_replays_the_history(primary: Primary, store_url: str, origin: str) -> None:
    mirror = dns.versioned.Zone(origin)
    dns.query.inbound_xfr(HOST, mirror, port=primary.port, timeout=5, lifetime=30)
    first = soa_serial_of(mirror)
    edit(store_url, origin, put(origin, "www", "A", "192.0.2.82"))
    edit(store_url, origin, drop(origin, "txt", "TXT"), put(origin, "new", "AAAA", "2001:db8::1"))
    last = edit(store_url, origin, put(origin, "@", "MX", "20 mail", "30 mx.example.net.")).serial
    # The raw sequence: current SOA, then per change old SOA, removals, new SOA, additions.
    rrs = answers(tcp_exchange(HOST, primary.port, query_wire(origin, "IXFR", serial=first)))
    soas = [rr[0].serial for rr in rrs if rr.rdtype == dns.rdatatype.SOA]
    assert soas[0] == soas[-1] == last
    assert soas[1] == first
    assert len(soas) == 2 + 2 * 3  # three changes, incremental
    lines = [f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)} {rr[0]}" for rr in rrs]
    assert f"www.{origin} A 192.0.2.80" in lines[2:4]  # removed by the first change
    # dnspython's IXFR client applies it; the result equals a fresh AXFR.
    query = dns.xfr.make_query(mirror)[0]
    dns.query.inbound_xfr(HOST, mirror, query, port=primary.port, timeout=5, lifetime=30)
    assert soa_serial_of(mirror) == last
    assert records_of(mirror) == records(axfr_zone(primary, origin))


def test_ixfr_after_a_replace_is_axfr_style(primary: Primary, store_url: str, origin: str) -> None:
    first = current_serial(primary, origin)
    edit(store_url, origin, put(origin, "www", "A", "192.0.2.82"))
    last = import_zone(store_url, origin, ZONE.replace("192.0.2.53", "192.0.2.99")).serial
    rrs = answers(tcp_exchange(HOST, primary.port, query_wire(origin, "IXFR", serial=first)))
    soas = [rr[0].serial for rr in rrs if rr.rdtype == dns.rdatatype.SOA]
    assert soas == [last, last]  # AXFR-style: SOA, every record, SOA
    assert any(rr.rdtype == dns.rdatatype.A and str(rr[0]) == "192.0.2.99" for rr in rrs)


def test_ixfr_from_an_unknown_serial_is_axfr_style(primary: Primary, origin: str) -> None:
    rrs = answers(tcp_exchange(HOST, primary.port, query_wire(origin, "IXFR", serial=12345)))
    assert len(rrs) == ZONE_RECORDS + 1
    assert rrs[0].rdtype == rrs[-1].rdtype == dns.rdatatype.SOA


def test_ixfr_up_to_date_is_one_soa(primary: Primary, origin: str) -> None:
    current = current_serial(primary, origin)
    for serial in (current, current + 5):  # same, or newer than ours
        wire = query_wire(origin, "IXFR", serial=serial)
        (reply,) = tcp_exchange(HOST, primary.port, wire, count=1)
        message = dns.message.from_wire(reply)
        assert message.rcode() == dns.rcode.NOERROR
        assert len(message.answer) == 1 and soa_serial(message, origin) == current


def test_ixfr_without_soa_is_formerr(primary: Primary, origin: str) -> None:
    (reply,) = tcp_exchange(HOST, primary.port, query_wire(origin, "IXFR"), count=1)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def ixfr_query(origin: str) -> dns.message.Message:
    return dns.xfr.make_query(dns.versioned.Zone(origin), serial=1)[0]


def test_ixfr_over_udp_is_our_soa(primary: Primary, origin: str) -> None:
    reply = dns.query.udp(ixfr_query(origin), HOST, port=primary.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [rr.rdtype for rr in reply.answer] == [dns.rdatatype.SOA]
    assert soa_serial(reply, origin) == primary.serial(origin)


def test_ixfr_over_udp_outside_the_acl_is_refused(keyed_primary: Primary, origin: str) -> None:
    query = ixfr_query(origin)
    reply = dns.query.udp(query, HOST, port=keyed_primary.port, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    query.use_tsig(KEYRING, "xfr-key")
    signed = dns.query.udp(query, HOST, port=keyed_primary.port, timeout=5)
    assert signed.rcode() == dns.rcode.NOERROR and signed.had_tsig


def test_axfr_over_udp_is_notimp(primary: Primary, origin: str) -> None:
    query = dns.message.make_query(origin, "AXFR")
    assert dns.query.udp(query, HOST, port=primary.port, timeout=5).rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize(
    ("qname", "rcode"), [("{origin}", dns.rcode.REFUSED), ("other.test.", dns.rcode.NXDOMAIN)]
)
def test_notify_to_the_primary(primary: Primary, origin: str, qname: str, rcode: int) -> None:
    query = dns.message.make_query(qname.format(origin=origin), "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), (HOST, primary.port))
        reply = sock.recv(512)
    # As NSD: header only, the query's flags with QR and the rcode.
    assert len(reply) == 12
    assert reply[:2] == query.to_wire()[:2]
    assert reply[3] & 0xF == rcode
    assert (reply[2] >> 3) & 0xF == dns.opcode.NOTIFY


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_signed_soa_query_gets_a_signed_answer(
    keyed_primary: Primary, origin: str, transport: str
) -> None:
    # What a secondary sends before transferring, when it has a key for us.
    query = dns.message.make_query(origin, "SOA")
    query.use_tsig(KEYRING, "xfr-key")
    send = dns.query.udp if transport == "udp" else dns.query.tcp
    reply = send(query, HOST, port=keyed_primary.port, timeout=5)  # verifies the TSIG
    assert reply.had_tsig
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert soa_serial(reply, origin) == keyed_primary.serial(origin)


def test_signed_query_with_an_unknown_key_is_notauth(primary: Primary, origin: str) -> None:
    query = dns.message.make_query(origin, "SOA")
    query.use_tsig(dns.tsigkeyring.from_text({"other": ("hmac-sha256", SECRET)}), "other")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), (HOST, primary.port))
        reply = dns.message.from_wire(sock.recv(512), keyring=False)
    assert reply.rcode() == dns.rcode.NOTAUTH
    assert reply.tsig is not None and reply.tsig[0].error == dns.rcode.BADKEY
    assert not reply.answer
