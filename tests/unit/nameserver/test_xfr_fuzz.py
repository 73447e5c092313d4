"""Mutated signed queries through the transfer handlers: an answer, never an exception."""

from __future__ import annotations

import random

import dns.message
import dns.tsigkeyring
import dns.versioned
import dns.xfr

from nameserver.index import ZoneTable
from nameserver.rrwire import AXFR, IXFR
from nameserver.wire import WireError, parse_query
from nameserver.xfr import TransferConfig, TransferService
from nameserver.zonefile import from_text
from storage.db import connect

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
KEYRING = dns.tsigkeyring.from_text({"xfr-key": ("hmac-sha256", SECRET)})
ZONE = "@ 3600 SOA ns1 hostmaster 5 7200 3600 1209600 300\n@ 3600 NS ns1\nns1 3600 A 192.0.2.1\n"


def seeds() -> list[bytes]:
    ixfr = dns.xfr.make_query(dns.versioned.Zone("example."), serial=3)[0]
    ixfr.use_tsig(KEYRING, "xfr-key")
    soa = dns.message.make_query("example.", "SOA", use_edns=0)
    soa.use_tsig(KEYRING, "xfr-key")
    axfr = dns.message.make_query("example.", "AXFR")
    axfr.use_tsig(KEYRING, "xfr-key")
    return [ixfr.to_wire(), soa.to_wire(), axfr.to_wire()]


def mutate(rng: random.Random, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.6 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind < 0.8 and len(data) > 12:
            del data[rng.randrange(12, len(data)) :]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


def test_mutated_signed_queries_never_raise() -> None:
    table = ZoneTable.from_snapshots([from_text(ZONE, "example.")])
    config = TransferConfig.from_texts(
        allow_transfer=["127.0.0.1"], tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"]
    )
    service = TransferService(connect("sqlite+aiosqlite:///:memory:"), table, config)
    rng = random.Random(1995)
    originals = seeds()
    handled = 0
    rcodes: set[int] = set()
    for i in range(5_000):
        wire = mutate(rng, originals[i % 3]) if i % 50 else originals[i % 3]
        try:
            query = parse_query(wire)
        except WireError:
            continue
        peer = ("127.0.0.1" if i % 2 else "192.0.2.9", 5353)
        if query.qtype in (AXFR, IXFR) and query.qclass == 1:
            reply = service.udp(query, peer)
        elif query.tsig_offset is not None:
            reply = service.signed(query, peer, 1232)
        else:
            continue
        handled += 1
        assert reply is not None and reply[:2] == wire[:2]
        assert reply[2] & 0x80  # QR
        rcodes.add(reply[3] & 0xF)
    assert handled > 1_000
    assert {0, 1, 9} <= rcodes  # answered, FORMERR, NOTAUTH (bad TSIG) all reached
