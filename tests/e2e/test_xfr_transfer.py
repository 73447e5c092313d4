"""AXFR and IXFR from a real store over real sockets; dnspython is the secondary.

Every zone is written through storage (replace_zone, apply_changes), served
by the nameserver with the transfer service wired in, and read back with
dnspython's own transfer client, which checks the RFC 5936/1995 framing and
every TSIG on the way.
"""

from __future__ import annotations

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
    soa_serial,
    tcp_exchange,
)

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
KEYRING = dns.tsigkeyring.from_text({"xfr-key": ("hmac-sha256", SECRET)})
ORIGIN = "xfr.test."
KEY_ONLY = TransferConfig.from_texts(
    allow_transfer=["10.0.0.0/8"], tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"]
)
ZONE = """
$TTL 3600
@       SOA   ns1.xfr.test. hostmaster.xfr.test. 2024010100 7200 3600 1209600 300
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


def big_zone(count: int) -> str:
    lines = [ZONE]
    lines += [f"h{i} A 198.51.{i // 250}.{i % 250}" for i in range(count)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def primary(database_url: str) -> Iterator[Primary]:
    import_zone(database_url, ORIGIN, ZONE)
    config = TransferConfig.from_texts(
        allow_transfer=["127.0.0.0/8", "::1"], tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"]
    )
    with run_primary(database_url, config) as server:
        yield server


@pytest.fixture
def keyed_primary(database_url: str) -> Iterator[Primary]:
    """Transfers only with the key: 127.0.0.1 is not in allow_transfer."""
    import_zone(database_url, ORIGIN, ZONE)
    with run_primary(database_url, KEY_ONLY) as server:
        yield server


@pytest.fixture
def big_primary(database_url: str) -> Iterator[Primary]:
    import_zone(database_url, ORIGIN, big_zone(3000))
    with run_primary(database_url, KEY_ONLY) as server:
        yield server


def axfr_zone(primary: Primary, **kwargs: object) -> dns.zone.Zone:
    return dns.zone.from_xfr(
        dns.query.xfr(HOST, ORIGIN, port=primary.port, timeout=5, lifetime=30, relativize=False, **kwargs),  # type: ignore[arg-type]
        relativize=False,
    )


def records(zone: dns.zone.Zone) -> set[str]:
    return {
        f"{name} {rdataset.ttl} {dns.rdatatype.to_text(rdataset.rdtype)} {rdata}"
        for name, rdataset in zone.iterate_rdatasets()
        for rdata in rdataset
    }


def query_wire(qtype: str, serial: int | None = None, keyname: str | None = None) -> bytes:
    if serial is None:
        query = dns.message.make_query(ORIGIN, qtype)
    else:
        query = dns.xfr.make_query(dns.versioned.Zone(ORIGIN), serial=serial)[0]
    if keyname is not None:
        query.use_tsig(KEYRING, keyname)
    return query.to_wire()


def test_axfr_is_the_store_content(primary: Primary) -> None:
    zone = axfr_zone(primary)
    expected = dns.zone.from_text(ZONE, ORIGIN, relativize=False)
    serial = primary.serial(ORIGIN)
    assert serial is not None and serial > 2024010100  # the store's serial
    with_serial = {line.replace(" 2024010100 ", f" {serial} ") for line in records(expected)}
    assert records(zone) == with_serial


def test_axfr_soa_first_and_last(primary: Primary) -> None:
    replies = tcp_exchange(HOST, primary.port, query_wire("AXFR"))
    answers = [rr for wire in replies for rr in dns.message.from_wire(wire, one_rr_per_rrset=True).answer]
    assert answers[0].rdtype == dns.rdatatype.SOA and answers[-1].rdtype == dns.rdatatype.SOA
    assert sum(1 for rr in answers if rr.rdtype == dns.rdatatype.SOA) == 2
    assert all(dns.message.from_wire(w).flags & dns.flags.AA for w in replies)


def test_big_zone_in_several_messages_each_signed(big_primary: Primary) -> None:
    zone = axfr_zone(big_primary, keyring=KEYRING, keyname="xfr-key")  # verifies every TSIG
    assert len(records(zone)) == 3000 + 13
    replies = tcp_exchange(HOST, big_primary.port, query_wire("AXFR", keyname="xfr-key"))
    assert len(replies) > 3
    for wire in replies:
        assert dns.message.from_wire(wire, keyring=False).had_tsig


def test_unsigned_transfer_outside_the_acl_is_refused(keyed_primary: Primary) -> None:
    (reply,) = tcp_exchange(HOST, keyed_primary.port, query_wire("AXFR"), count=1)
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
    keyed_primary: Primary, keyring: dict[dns.name.Name, dns.tsig.Key], keyname: str, error: int
) -> None:
    query = dns.message.make_query(ORIGIN, "AXFR")
    query.use_tsig(keyring, keyname)
    (reply,) = tcp_exchange(HOST, keyed_primary.port, query.to_wire(), count=1)
    message = dns.message.from_wire(reply, keyring=False)
    assert message.rcode() == dns.rcode.NOTAUTH
    assert message.tsig is not None
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    assert rdata.error == error
    assert not message.answer


@pytest.mark.parametrize("qname", ["not-hosted.test.", "www.xfr.test."])
def test_not_a_zone_apex_is_notauth(primary: Primary, qname: str) -> None:
    query = dns.message.make_query(qname, "AXFR")
    (reply,) = tcp_exchange(HOST, primary.port, query.to_wire(), count=1)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.NOTAUTH


def test_ixfr_replays_the_history(primary: Primary, database_url: str) -> None:
    mirror = dns.versioned.Zone(ORIGIN)
    dns.query.inbound_xfr(HOST, mirror, port=primary.port, timeout=5, lifetime=30)
    first = soa_serial_of(mirror)
    edit(database_url, ORIGIN, put(ORIGIN, "www", "A", "192.0.2.82"))
    edit(database_url, ORIGIN, drop(ORIGIN, "txt", "TXT"), put(ORIGIN, "new", "AAAA", "2001:db8::1"))
    last = edit(database_url, ORIGIN, put(ORIGIN, "@", "MX", "20 mail", "30 mx.example.net.")).serial
    # The raw sequence: current SOA, then per change old SOA, removals, new SOA, additions.
    replies = tcp_exchange(HOST, primary.port, query_wire("IXFR", serial=first))
    answer = [rr for w in replies for rr in dns.message.from_wire(w, one_rr_per_rrset=True).answer]
    soas = [rr[0].serial for rr in answer if rr.rdtype == dns.rdatatype.SOA]
    assert soas[0] == soas[-1] == last
    assert soas[1] == first
    assert len(soas) == 2 + 2 * 3  # three changes, incremental
    lines = [f"{rr.name} {dns.rdatatype.to_text(rr.rdtype)} {rr[0]}" for rr in answer]
    assert "www.xfr.test. A 192.0.2.80" in lines[2:4]  # removed in the first change
    # dnspython's IXFR client applies it; the result equals a fresh AXFR.
    dns.query.inbound_xfr(
        HOST, mirror, dns.xfr.make_query(mirror)[0], port=primary.port, timeout=5, lifetime=30
    )
    assert soa_serial_of(mirror) == last
    assert records_of(mirror) == records(axfr_zone(primary))


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


def test_ixfr_after_a_replace_is_axfr_style(primary: Primary, database_url: str) -> None:
    first = soa_serial(dns.query.udp(dns.message.make_query(ORIGIN, "SOA"), HOST, port=primary.port, timeout=5), ORIGIN)
    edit(database_url, ORIGIN, put(ORIGIN, "www", "A", "192.0.2.82"))
    last = import_zone(database_url, ORIGIN, ZONE.replace("192.0.2.53", "192.0.2.99")).serial
    replies = tcp_exchange(HOST, primary.port, query_wire("IXFR", serial=first))
    answer = [rr for w in replies for rr in dns.message.from_wire(w, one_rr_per_rrset=True).answer]
    soas = [rr[0].serial for rr in answer if rr.rdtype == dns.rdatatype.SOA]
    assert soas == [last, last]  # AXFR-style: SOA, every record, SOA
    assert any(rr.rdtype == dns.rdatatype.A and str(rr[0]) == "192.0.2.99" for rr in answer)


def test_ixfr_from_an_unknown_serial_is_axfr_style(primary: Primary) -> None:
    replies = tcp_exchange(HOST, primary.port, query_wire("IXFR", serial=12345))
    answer = [rr for w in replies for rr in dns.message.from_wire(w, one_rr_per_rrset=True).answer]
    assert len(answer) == 14
    assert answer[0].rdtype == answer[-1].rdtype == dns.rdatatype.SOA


def test_ixfr_up_to_date_is_one_soa(primary: Primary) -> None:
    current = soa_serial(dns.query.tcp(dns.message.make_query(ORIGIN, "SOA"), HOST, port=primary.port, timeout=5), ORIGIN)
    for serial in (current, current + 5):  # same, or newer than ours
        (reply,) = tcp_exchange(HOST, primary.port, query_wire("IXFR", serial=serial), count=1)
        message = dns.message.from_wire(reply)
        assert message.rcode() == dns.rcode.NOERROR
        assert len(message.answer) == 1 and soa_serial(message, ORIGIN) == current


def test_ixfr_without_soa_is_formerr(primary: Primary) -> None:
    (reply,) = tcp_exchange(HOST, primary.port, query_wire("IXFR"), count=1)
    assert dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_ixfr_over_udp_is_our_soa(primary: Primary) -> None:
    query = dns.message.make_query(ORIGIN, "IXFR")
    query.authority = dns.xfr.make_query(dns.versioned.Zone(ORIGIN), serial=1)[0].authority
    reply = dns.query.udp(query, HOST, port=primary.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert [rr.rdtype for rr in reply.answer] == [dns.rdatatype.SOA]
    assert soa_serial(reply, ORIGIN) == primary.serial(ORIGIN)


def test_ixfr_over_udp_outside_the_acl_is_refused(keyed_primary: Primary) -> None:
    query = dns.message.make_query(ORIGIN, "IXFR")
    query.authority = dns.xfr.make_query(dns.versioned.Zone(ORIGIN), serial=1)[0].authority
    reply = dns.query.udp(query, HOST, port=keyed_primary.port, timeout=5)
    assert reply.rcode() == dns.rcode.REFUSED
    query.use_tsig(KEYRING, "xfr-key")
    signed = dns.query.udp(query, HOST, port=keyed_primary.port, timeout=5)
    assert signed.rcode() == dns.rcode.NOERROR and signed.had_tsig


def test_axfr_over_udp_is_notimp(primary: Primary) -> None:
    reply = dns.query.udp(dns.message.make_query(ORIGIN, "AXFR"), HOST, port=primary.port, timeout=5)
    assert reply.rcode() == dns.rcode.NOTIMP


@pytest.mark.parametrize(("qname", "rcode"), [(ORIGIN, dns.rcode.REFUSED), ("other.test.", dns.rcode.NXDOMAIN)])
def test_notify_to_the_primary(primary: Primary, qname: str, rcode: int) -> None:
    query = dns.message.make_query(qname, "SOA")
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
