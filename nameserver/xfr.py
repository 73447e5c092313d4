"""Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995), with TSIG (RFC 8945).

Settings (read by zonehost/config.py, handed down as `TransferConfig`):
- `allow_transfer` (ZONEHOST_ALLOW_TRANSFER): comma-separated CIDRs or
  addresses allowed to transfer without a key, e.g. "127.0.0.0/8,::1".
  Empty (the default): no address is allowed.
- `tsig_keys` (ZONEHOST_TSIG_KEYS): "name:algorithm:base64secret" entries;
  a request signed with any of them may transfer from anywhere.
- `notify` (ZONEHOST_NOTIFY): secondaries to NOTIFY on each change,
  "host:port" (port 53 if left out; IPv6 as "[::1]:53").
- `notify_tsig_key` (ZONEHOST_NOTIFY_TSIG_KEY): name of one of `tsig_keys`
  to sign the NOTIFY messages with (optional).

What a client gets, as NSD 4.6 answers it:
- a name that is not the apex of a zone we serve: NOTAUTH;
- a client neither in `allow_transfer` nor signing with a key: REFUSED;
- a TSIG with an unknown key or a bad MAC: NOTAUTH with TSIG error
  BADKEY/BADSIG (unsigned), a skewed clock: NOTAUTH with BADTIME (signed);
- AXFR over UDP: NOTIMP (answered in responder.py, RFC 5936 4.2);
- IXFR over UDP: one SOA, our current version (RFC 1995 section 2): the
  client is up to date, or must ask again over TCP.

Content comes from the store at request time, in one read transaction
(REPEATABLE READ on PostgreSQL, a WAL snapshot on SQLite), so the zone row,
its records and its change history are all of one serial: SOA first and
last, RRs packed into messages of up to `message_bytes`, each signed when
the request was. Transfers are not the hot path; the in-memory table is
only used to tell "not our zone" apart before touching the store, and for
the single-SOA answers.

IXFR walks the zone's change history (storage.feed.zone_history) back from
the current serial to the client's. Each change becomes "old SOA, removed
RRs, new SOA, added RRs". The history holds serials but not old SOA
fields, so every SOA in the sequence carries the zone's current fields with
that change's serial: RFC 1995 clients only compare serials. When the
client's serial is not in the history, or a change on the way is a full
reload (create, replace, status, delete), the reply is AXFR-style inside
IXFR (RFC 1995 section 4).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import struct
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from nameserver.acl import TransferAcl
from nameserver.answer import answer
from nameserver.index import Zone, ZoneTable, name_to_wire
from nameserver.message import AA, QR, RD, Query, Rcode
from nameserver.metrics import NameserverMetrics
from nameserver.rrwire import AXFR, IXFR, OPT, SOA
from nameserver.tsig import (
    CheckedRequest,
    InvalidKey,
    Keyring,
    Signer,
    TsigKey,
    TsigRcode,
    Verdict,
    badtime_error,
    check_request,
    unsigned_error,
)
from nameserver.wire import WireError, parse_query, render
from storage.db import Database
from storage.feed import ChangeEvent, zone_history
from storage.models import ZoneStatus
from storage.snapshot import ZoneSnapshot, load_zones
from storage.zones import get_zone, soa_from_zone

log = logging.getLogger(__name__)

XFR_TYPES = frozenset({AXFR, IXFR})
DEFAULT_MESSAGE_BYTES = 16384
MAX_MESSAGE_BYTES = 65535
TSIG_RESERVE_BYTES = 512  # room left for the TSIG RR (names <= 255 + MAC <= 64 + fixed)
# Kinds of change after which the history cannot be replayed as a diff.
FULL_RELOAD_KINDS = frozenset({"create", "replace", "status", "delete"})
CLASS_IN = 1
Peer = tuple[str, int]
# One resource record ready for the wire: owner (lower-case wire), type, TTL, rdata.
Rr = tuple[bytes, int, int, bytes]

_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")


class TransferError(Exception):
    """Base class of transfer errors."""


class TransferConfigError(TransferError):
    """The transfer settings are invalid."""


class RecordTooBig(TransferError):
    """One record does not fit in a 64 KiB message."""


class Style(enum.Enum):
    AXFR = "axfr"
    IXFR = "ixfr"  # incremental
    IXFR_AXFR = "ixfr-axfr"  # AXFR-style reply to an IXFR
    IXFR_CURRENT = "ixfr-current"  # the client is up to date: one SOA


@dataclass(frozen=True, slots=True)
class TransferConfig:
    acl: TransferAcl = field(default_factory=TransferAcl)
    keyring: Keyring = field(default_factory=Keyring)
    notify: tuple[tuple[str, int], ...] = ()
    notify_key: TsigKey | None = None
    message_bytes: int = DEFAULT_MESSAGE_BYTES
    max_transfers: int = 8  # transfers running at once; more wait their turn

    @classmethod
    def from_texts(
        cls,
        *,
        allow_transfer: Iterable[str] = (),
        tsig_keys: Iterable[str] = (),
        notify: Iterable[str] = (),
        notify_tsig_key: str | None = None,
    ) -> TransferConfig:
        """Build from the raw settings; raises TransferConfigError naming the bad one."""
        from nameserver.acl import AclError
        from nameserver.notify import TargetError, parse_target

        try:
            acl = TransferAcl.from_texts(allow_transfer)
            keyring = Keyring.from_texts(tsig_keys)
            targets = tuple(parse_target(t) for t in notify if t.strip())
        except (AclError, InvalidKey, TargetError) as exc:
            raise TransferConfigError(str(exc)) from exc
        key = None
        if notify_tsig_key:
            key = keyring.get(dns.name.from_text(notify_tsig_key))
            if key is None:
                raise TransferConfigError(
                    f"notify_tsig_key {notify_tsig_key!r} is not one of tsig_keys"
                )
        return cls(acl, keyring, targets, key)


@dataclass(frozen=True, slots=True)
class ReplyHead:
    """What every message of one reply shares."""

    id: int
    flags: int
    question: bytes  # as sent; only the first message carries it
    opt: bytes  # OPT RR for the first message, b"" without EDNS


def reply_head(query: Query, payload: int = 1232) -> ReplyHead:
    flags = QR | AA | (query.flags & (0x7800 | RD))
    opt = b""
    if query.edns is not None:
        opt = b"\0" + _RR_FIXED.pack(OPT, payload, 0, 0)
    return ReplyHead(query.id, flags, query.question, opt)


def error_reply(query: Query, rcode: Rcode) -> bytes:
    """Header and question with `rcode`; AA clear, as NSD sends refusals, and
    an OPT record when the query had one (RFC 6891 section 7)."""
    flags = QR | (query.flags & (0x7800 | RD)) | rcode
    if query.edns is None:
        return _HEADER.pack(query.id, flags, 1, 0, 0, 0) + query.question
    ttl = 0x8000 if query.edns.do else 0
    opt = b"\0" + _OPT.pack(OPT, ERROR_PAYLOAD, ttl, 0)
    return _HEADER.pack(query.id, flags, 1, 0, 0, 1) + query.question + opt


ERROR_PAYLOAD = 1232
_OPT = struct.Struct("!HHIH")


def _put_name(buf: bytearray, names: dict[bytes, int], name: bytes) -> None:
    """Append `name`, pointing at an earlier copy of its longest known suffix."""
    pos = 0
    while name[pos]:
        suffix = name[pos:]
        offset = names.get(suffix)
        if offset is not None:
            buf += name[:pos]
            buf += struct.pack("!H", 0xC000 | offset)
            return
        at = len(buf) + pos
        if at < 0x4000:
            names[suffix] = at
        pos += name[pos] + 1
    buf += name


def pack_messages(head: ReplyHead, records: Iterable[Rr], limit: int) -> Iterator[bytes]:
    """Pack `records` in order into messages of at most `limit` octets (before
    TSIG); owner names are compressed, rdata is written as stored."""
    limit = min(limit, MAX_MESSAGE_BYTES - TSIG_RESERVE_BYTES)
    first = True
    buf = bytearray()
    names: dict[bytes, int] = {}
    count = 0

    def start() -> None:
        nonlocal buf, names, count
        buf = bytearray(12)
        if first:
            buf += head.question
        names = {}
        count = 0

    def finish() -> bytes:
        nonlocal first
        extra = head.opt if first else b""
        _HEADER.pack_into(
            buf, 0, head.id, head.flags, 1 if first else 0, count, 0, 1 if extra else 0
        )
        first = False
        return bytes(buf + extra)

    start()
    room = limit - len(head.opt)
    for owner, rdtype, ttl, rdata in records:
        size = len(owner) + 10 + len(rdata)  # uncompressed: an upper bound
        if count and len(buf) + size > room:
            yield finish()
            start()
            room = limit
        if len(buf) + size > MAX_MESSAGE_BYTES - TSIG_RESERVE_BYTES:
            raise RecordTooBig(f"record of {size} octets")
        _put_name(buf, names, owner)
        buf += _RR_FIXED.pack(rdtype, CLASS_IN, ttl, len(rdata))
        buf += rdata
        count += 1
    yield finish()


def _wire(rdata: dns.rdata.Rdata) -> bytes:
    wire = rdata.to_wire()
    assert wire is not None  # None only when writing to a file
    return wire


def _soa_rr(origin: bytes, ttl: int, soa: dns.rdtypes.ANY.SOA.SOA, serial: int) -> Rr:
    return origin, SOA, ttl, _wire(soa.replace(serial=serial))


def _diff_rr(item: tuple[str, int, int, str], origin: dns.name.Name) -> Rr:
    name, rdtype, ttl, content = item
    rdata = dns.rdata.from_text(
        dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype), content, origin,
        relativize=False,
    )
    return name_to_wire(name), rdtype, ttl, _wire(rdata)


def serial_gte(a: int, b: int) -> bool:
    """a >= b in RFC 1982 serial number arithmetic (32 bits)."""
    return a == b or 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def incremental_chain(
    history: Sequence[ChangeEvent], client_serial: int, current_serial: int
) -> list[ChangeEvent] | None:
    """The changes leading from `client_serial` to `current_serial`, oldest
    first, or None when they cannot be replayed as diffs."""
    chain: list[ChangeEvent] = []
    expected = current_serial
    for event in reversed(history):
        if event.serial != expected or event.previous_serial is None:
            return None
        if event.full_reload or event.kind in FULL_RELOAD_KINDS:
            return None
        chain.append(event)
        if event.previous_serial == client_serial:
            chain.reverse()
            return chain
        expected = event.previous_serial
    return None


def ixfr_records(
    origin: dns.name.Name, soa_ttl: int, soa: dns.rdtypes.ANY.SOA.SOA, chain: Sequence[ChangeEvent]
) -> Iterator[Rr]:
    """RFC 1995 section 4: current SOA, then per change old SOA, deletions,
    new SOA, additions, then the current SOA again."""
    apex = name_to_wire(origin.to_text())
    current = _soa_rr(apex, soa_ttl, soa, soa.serial)
    yield current
    for event in chain:
        assert event.previous_serial is not None
        yield _soa_rr(apex, soa_ttl, soa, event.previous_serial)
        for item in event.removed:
            yield _diff_rr(item, origin)
        yield _soa_rr(apex, soa_ttl, soa, event.serial)
        for item in event.added:
            yield _diff_rr(item, origin)
    yield current


@dataclass(frozen=True, slots=True)
class Transfer:
    """What one request gets: the records to send and how they were chosen."""

    style: Style
    serial: int
    # Produced while the messages are packed, so a big zone is turned into
    # wire form one message at a time, between which the loop serves others.
    records: Iterable[Rr]


class ZoneGone(TransferError):
    """The zone is not (or no longer) active in the store."""


async def load_transfer(
    db: Database, origin: str, client_serial: int | None
) -> Transfer:
    """Read what to send from the store, in one consistent snapshot.
    `client_serial` is None for AXFR. Raises ZoneGone."""
    async with db.read() as session:
        if db.is_postgres:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        zone = await get_zone(session, origin)
        if zone is None or zone.status != ZoneStatus.ACTIVE:
            raise ZoneGone(origin)
        soa = soa_from_zone(zone)
        apex = name_to_wire(origin)
        serial = zone.serial
        if client_serial is not None:
            current = _soa_rr(apex, zone.soa_ttl, soa, serial)
            if serial_gte(client_serial, serial):
                return Transfer(Style.IXFR_CURRENT, serial, (current,))
            chain = incremental_chain(await zone_history(session, origin), client_serial, serial)
            if chain is not None:
                records = ixfr_records(dns.name.from_text(origin), zone.soa_ttl, soa, chain)
                return Transfer(Style.IXFR, serial, records)
        snapshots = await load_zones(session, [origin])
    if not snapshots:
        raise ZoneGone(origin)
    style = Style.AXFR if client_serial is None else Style.IXFR_AXFR
    return Transfer(style, snapshots[0].serial, axfr_records(snapshots[0]))


def axfr_records(snapshot: ZoneSnapshot) -> Iterator[Rr]:
    """The zone's SOA, every other record, the SOA again (RFC 5936 2.2)."""
    apex = name_to_wire(snapshot.origin)
    soa = next(
        (s for s in snapshot.rrsets if s.rdtype == SOA and name_to_wire(s.name) == apex), None
    )
    if soa is None:
        raise ZoneGone(snapshot.origin)  # load_zones always puts it first
    soa_rr = (apex, SOA, soa.ttl, soa.rdatas[0])
    yield soa_rr
    for stored in snapshot.rrsets:
        if stored.rdtype == SOA:
            continue
        owner = name_to_wire(stored.name)
        for rdata in stored.rdatas:
            yield owner, stored.rdtype, stored.ttl, rdata
    yield soa_rr


def _client_serial(checked: CheckedRequest, qname: bytes) -> int | None:
    """The serial of the SOA an IXFR carries in its authority section."""
    message = checked.message
    if message is None:
        return None
    for rrset in message.authority:
        if rrset.rdtype == dns.rdatatype.SOA and name_to_wire(rrset.name.to_text()) == qname:
            for rdata in rrset:
                assert isinstance(rdata, dns.rdtypes.ANY.SOA.SOA)
                return int(rdata.serial)
    return None


def _zone_soa(zone: Zone) -> Rr:
    """The SOA of an in-memory zone, as one record."""
    record = zone.soa.compressed[0]
    rdata = record.head + b"".join(record.names) + record.tail
    return zone.origin, SOA, zone.soa.ttl, rdata


class TransferService:
    """Answers AXFR/IXFR for the transports (responder.TransferHandler)."""

    def __init__(
        self,
        db: Database,
        table: ZoneTable,
        config: TransferConfig,
        metrics: NameserverMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.table = table
        self.config = config
        self.metrics = metrics
        self._clock = clock
        self._slots = asyncio.Semaphore(config.max_transfers)

    # -- checks shared by TCP and UDP -------------------------------------
    def _tsig_failure(self, query: Query, checked: CheckedRequest, peer: Peer) -> bytes | None:
        """The reply to a request whose TSIG does not verify, or None if it does
        (or is absent): NOTAUTH with the TSIG error, as RFC 8945 5.2 says."""
        verdict = checked.verdict
        if verdict is Verdict.MALFORMED:
            return error_reply(query, Rcode.FORMERR)
        if verdict in (Verdict.BADKEY, Verdict.BADSIG):
            assert checked.tsig is not None
            error = TsigRcode.BADKEY if verdict is Verdict.BADKEY else TsigRcode.BADSIG
            log.info("tsig %s qname=%r peer=%s", verdict.value, query.qname, peer[0])
            return unsigned_error(error_reply(query, Rcode.NOTAUTH), checked.tsig, error)
        if verdict is Verdict.BADTIME:
            assert checked.tsig is not None and checked.key is not None
            log.info("tsig badtime qname=%r peer=%s", query.qname, peer[0])
            return badtime_error(
                error_reply(query, Rcode.NOTAUTH), checked.key, checked.tsig, int(self._clock())
            )
        return None

    @staticmethod
    def _signer(checked: CheckedRequest) -> Signer | None:
        if checked.verdict is not Verdict.VALID:
            return None
        assert checked.key is not None and checked.tsig is not None
        return Signer(checked.key, checked.tsig.mac, fudge_s=checked.tsig.fudge)

    def _gate(self, query: Query, peer: Peer) -> tuple[bytes | None, CheckedRequest, Signer | None]:
        """TSIG, zone and ACL checks. Returns (final reply or None to go on,
        the parsed request, the signer for the reply)."""
        checked = check_request(query.message, self.config.keyring)
        failure = self._tsig_failure(query, checked, peer)
        if failure is not None:
            return failure, checked, None
        signer = self._signer(checked)
        zone = self.table.index.zones.get(query.qname)
        if zone is None or not zone.active:
            return self._sign(error_reply(query, Rcode.NOTAUTH), signer), checked, signer
        if signer is None and not self.config.acl.allows(peer[0]):
            log.info("transfer refused zone=%s peer=%s", zone.origin_text, peer[0])
            return self._sign(error_reply(query, Rcode.REFUSED), signer), checked, signer
        if query.qtype == IXFR and _client_serial(checked, query.qname) is None:
            return self._sign(error_reply(query, Rcode.FORMERR), signer), checked, signer
        return None, checked, signer

    @staticmethod
    def _sign(wire: bytes, signer: Signer | None) -> bytes:
        return wire if signer is None else signer.sign(wire)

    def _count(self, transport: str, query: Query, rcode: int) -> None:
        if self.metrics is not None:
            zone = self.table.index.zones.get(query.qname)
            self.metrics.hits[(transport, zone.origin_text if zone else "", query.qtype, rcode)] += 1

    # -- TCP --------------------------------------------------------------
    async def transfer(self, query: Query, peer: Peer, send: Callable[[bytes], None]) -> None:
        """Answer one AXFR/IXFR on a TCP connection; `send` writes one message."""
        async with self._slots:
            await self._transfer(query, peer, send)

    async def _transfer(self, query: Query, peer: Peer, send: Callable[[bytes], None]) -> None:
        final, checked, signer = self._gate(query, peer)
        if final is not None:
            self._count("tcp", query, final[3] & 0xF)
            send(final)
            return
        zone = self.table.index.zones[query.qname]
        client_serial = _client_serial(checked, query.qname) if query.qtype == IXFR else None
        started = time.perf_counter()
        try:
            transfer = await load_transfer(self.db, zone.origin_text, client_serial)
        except ZoneGone:
            self._count("tcp", query, Rcode.NOTAUTH)
            send(self._sign(error_reply(query, Rcode.NOTAUTH), signer))
            return
        except Exception:
            log.exception("transfer zone=%s peer=%s: cannot read the store", zone.origin_text, peer[0])
            self._count("tcp", query, Rcode.SERVFAIL)
            send(self._sign(error_reply(query, Rcode.SERVFAIL), signer))
            return
        head = reply_head(query)
        messages = records = 0

        def counted() -> Iterator[Rr]:
            nonlocal records
            for record in transfer.records:
                records += 1
                yield record

        try:
            for wire in pack_messages(head, counted(), self.config.message_bytes):
                send(self._sign(wire, signer))
                messages += 1
                await asyncio.sleep(0)  # let the loop write and answer others
        except RecordTooBig:
            log.error("transfer zone=%s: a record does not fit in a message", zone.origin_text)
            if messages == 0:
                send(self._sign(error_reply(query, Rcode.SERVFAIL), signer))
            raise
        self._count("tcp", query, Rcode.NOERROR)
        log.info(
            "transfer zone=%s style=%s serial=%d client_serial=%s records=%d messages=%d "
            "peer=%s tsig=%s in %.3fs",
            zone.origin_text, transfer.style.value, transfer.serial, client_serial,
            records, messages, peer[0],
            signer.key.name.to_text() if signer else "-", time.perf_counter() - started,
        )

    # -- any other signed query -----------------------------------------
    def signed(self, query: Query, peer: Peer, limit: int, server_payload: int = 1232) -> bytes:
        """A standard query with a TSIG, such as a secondary's SOA check before
        a transfer: answered as if unsigned, the reply signed with the same
        key (RFC 8945 5.3), or NOTAUTH with the TSIG error."""
        checked = check_request(query.message, self.config.keyring)
        failure = self._tsig_failure(query, checked, peer)
        if failure is not None:
            return failure
        signer = self._signer(checked)
        assert signer is not None and query.tsig_offset is not None
        unsigned = bytearray(query.message[: query.tsig_offset])
        struct.pack_into("!H", unsigned, 10, struct.unpack_from("!H", unsigned, 10)[0] - 1)
        try:
            plain = parse_query(bytes(unsigned))
        except WireError:
            return signer.sign(error_reply(query, Rcode.FORMERR))
        reply = render(
            answer(plain, self.table.index), plain, limit - signer.reserve_bytes, server_payload
        )
        return signer.sign(reply)

    # -- UDP --------------------------------------------------------------
    def udp(self, query: Query, peer: Peer) -> bytes | None:
        """IXFR over UDP: our current SOA alone (RFC 1995 section 2); the
        client either is up to date or retries over TCP."""
        final, _checked, signer = self._gate(query, peer)
        if final is not None:
            self._count("udp", query, final[3] & 0xF)
            return final
        zone = self.table.index.zones[query.qname]
        wire = next(pack_messages(reply_head(query), (_zone_soa(zone),), 512))
        self._count("udp", query, Rcode.NOERROR)
        return self._sign(wire, signer)
