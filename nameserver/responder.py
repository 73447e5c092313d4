"""Bytes in, bytes out: everything between the transports and the engine.

The fast path is a dict lookup in a `ReplyCache` (see replycache.py): the
prepared reply to the same bytes after the ID. Replies are cached only when
nothing else went into them (no cookie, no TSIG, no error). An entry remembers the zone snapshots it was computed from and is
used only while each is still the published one, so an edit of one zone
costs the others nothing; adding or removing a zone drops every entry.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from nameserver.answer import (
    _ADDITIONAL_FOR,
    _NOT_AT_QNAME,
    CLASS_CH,
    Chaos,
    answer,
    answer_at_qname,
)
from nameserver.cookies import REFRESH_S, CookieJar
from nameserver.index import Zone, ZoneTable
from nameserver.message import COOKIE_OPTION, TC, Answer, Edns, Opcode, Outcome, Query, Rcode
from nameserver.metrics import NameserverMetrics, StatKey
from nameserver.options import NameserverOptions
from nameserver.replycache import ReplyCache
from nameserver.rrl import Action, RateLimiter
from nameserver.rrwire import AXFR, IXFR, TXT, prepare_rrset
from nameserver.wire import (
    UDP_MIN,
    BadQuery,
    Unanswerable,
    header_only,
    opt_record,
    parse_query,
    render,
    render_at_qname,
    udp_limit,
)

log = logging.getLogger(__name__)

TCP_LIMIT = 65535
Peer = tuple[str, int]


class TransferHandler(Protocol):
    """Answers AXFR/IXFR over TCP (nameserver/xfr.py); `send` queues one message."""

    def transfer(self, query: Query, peer: Peer, send: Callable[[bytes], None]) -> Awaitable[None]:
        ...

    def udp(self, query: Query, peer: Peer) -> bytes | None:
        """IXFR over UDP (RFC 1995 section 2)."""
        ...

    def signed(self, query: Query, peer: Peer, limit: int, server_payload: int) -> bytes:
        """Any other query with a TSIG: verified, answered, signed."""
        ...


class NotifyHandler(Protocol):
    """Answers NOTIFY (nameserver/notify.py); returns the reply or None to drop."""

    def notify(self, query: Query, peer: Peer) -> bytes | None:
        ...


@dataclass(frozen=True, slots=True)
class TransferRequest:
    query: Query


# A cached reply: (reply without its ID, statistics key, outcome (for RRL),
# end of the question in the query, (origin, token) of the zones it was
# computed from: tokens, not zones, so the cache keeps no old zone alive).
# Only strings, numbers, bytes and plain objects, no enum members: the
# collector then stops tracking an entry after its first pass, instead of
# walking 40,000 of them on every full collection (24 ms of CPU each, and
# 4-6 ms per middle-generation pass, measured under dnsperf).
_Entry = tuple[bytes, StatKey, str, int, tuple[tuple[bytes, object], ...]]
# ... and for a reply carrying a server cookie: when the cookie is due for
# renewal (wall clock), and whether the client's cookie was valid.
_CookieEntry = tuple[
    bytes, StatKey, str, int, tuple[tuple[bytes, object], ...], float, bool
]


def _chaos(options: NameserverOptions) -> Chaos | None:
    texts: dict[bytes, str] = {}
    if options.version is not None:
        texts[b"\x07version\x04bind\x00"] = options.version
        texts[b"\x07version\x06server\x00"] = options.version
    if options.identity is not None:
        texts[b"\x02id\x06server\x00"] = options.identity
        texts[b"\x08hostname\x04bind\x00"] = options.identity
    if not texts:
        return None
    rrsets = {}
    for name, text in texts.items():
        raw = text.encode("utf-8")[:255]
        rrsets[name] = prepare_rrset(TXT, 0, (bytes([len(raw)]) + raw,), rdclass=CLASS_CH)
    return Chaos(rrsets)


_NOTIFY = int(Opcode.NOTIFY)
_COUNTS_PLAIN = b"\x00\x01\x00\x00\x00\x00\x00\x00"  # QDCOUNT 1, nothing else
_COUNTS_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"  # ... and one additional record
_ROOT_OPT = b"\x00\x00\x29"  # root owner, TYPE 41
_DIRECT_HEAD = struct.Struct("!HHHHH")  # flags and the four counts
_DIRECT = Answer(Outcome.ANSWER, Rcode.NOERROR, True)  # what answer_at_qname stands for
_BY_QNAME = frozenset({Outcome.ANSWER.value, Outcome.NODATA.value})  # RRL: else per zone
_ANSWER = Outcome.ANSWER.value


class Responder:
    def __init__(
        self,
        table: ZoneTable,
        options: NameserverOptions | None = None,
        metrics: NameserverMetrics | None = None,
        notify: NotifyHandler | None = None,
        transfers: TransferHandler | None = None,
    ) -> None:
        self.table = table
        self.options = options or NameserverOptions()
        self.metrics = metrics or NameserverMetrics()
        self.notify_handler = notify
        self.transfers = transfers
        self.cookies = CookieJar() if self.options.cookies else None
        self.rrl = RateLimiter(self.options.rrl) if self.options.rrl else None
        self._chaos = _chaos(self.options)
        self._version = -1
        self._origins_version = -1
        self._zones: dict[bytes, Zone] = table.index.zones
        self._caches: dict[str, ReplyCache[_Entry]] = {
            "udp": ReplyCache(self.options.cache_entries),
            "tcp": ReplyCache(self.options.cache_entries),
        }
        self._udp_cache = self._caches["udp"]
        self._tcp_cache = self._caches["tcp"]
        # UDP replies that carry a server cookie, per client address: a
        # resolver repeats the same cookie pair until we renew ours.
        self._cookie_replies: dict[tuple[str, bytes], _CookieEntry] = {}
        self._stats: dict[StatKey, StatKey] = {}
        self._deps: dict[bytes, tuple[tuple[bytes, object], ...]] = {}  # by origin

    # -- caches -----------------------------------------------------------
    def _check_version(self) -> None:
        table = self.table
        self._version = table.version
        self._zones = table.index.zones
        if table.origins_version != self._origins_version:
            self._origins_version = table.origins_version
            for cache in self._caches.values():
                cache.clear()
            self._cookie_replies.clear()
            self._deps.clear()

    def _stale(self, deps: tuple[tuple[bytes, object], ...]) -> bool:
        zones = self._zones
        for origin, token in deps:
            zone = zones.get(origin)
            if zone is None or zone.token is not token:
                return True
        return False

    # -- entry points -----------------------------------------------------
    def udp(self, data: bytes, peer: Peer) -> bytes | None:
        """The reply to one UDP datagram, or None to send nothing."""
        if self.table.version != self._version:
            self._check_version()
        entry = self._udp_cache.young.get(data[2:]) or self._udp_cache.recall(data)
        if entry is None or (entry[4] and self._stale(entry[4])):
            if self._cookie_replies:
                return self._cookie_reply(data, peer)
            if self.rrl is None:
                direct = self._direct(data, "udp")
                if isinstance(direct, bytes):
                    return direct
                if direct is not None:
                    return self._general(direct, data, peer, "udp")
            reply = self._slow(data, peer, "udp")
            return None if isinstance(reply, TransferRequest) else reply
        self.metrics.hits[entry[1]] += 1
        if self.rrl is not None:
            return self._limited(data, peer, entry, data[:2] + entry[0])
        return data[:2] + entry[0]

    def _cookie_reply(self, data: bytes, peer: Peer) -> bytes | None:
        """A reply made for this client's cookie, while its server cookie is fresh."""
        hit = self._cookie_replies.get((peer[0], data[2:]))
        if hit is None or hit[5] <= time.time() or (hit[4] and self._stale(hit[4])):
            reply = self._slow(data, peer, "udp")
            return None if isinstance(reply, TransferRequest) else reply
        self.metrics.hits[hit[1]] += 1
        if self.rrl is not None and not hit[6]:
            return self._limited(data, peer, hit[:5], data[:2] + hit[0])
        return data[:2] + hit[0]

    def tcp(self, data: bytes, peer: Peer) -> bytes | TransferRequest | None:
        """The reply to one TCP message, a transfer to run, or None."""
        if self.table.version != self._version:
            self._check_version()
        entry = self._tcp_cache.get(data)
        if entry is not None and not self._stale(entry[4]):
            self.metrics.hits[entry[1]] += 1
            return data[:2] + entry[0]
        direct = self._direct(data, "tcp")
        if isinstance(direct, bytes):
            return direct
        if direct is not None:
            return self._general(direct, data, peer, "tcp")
        return self._slow(data, peer, "tcp")

    # -- the direct path --------------------------------------------------
    def _direct(self, data: bytes, transport: str) -> bytes | Query | None:
        """The commonest miss in one function: a plain QUERY (no option but a
        bare OPT of version 0) whose answer is the RRset of the query type at
        the query name itself, needing no additional section. It is what
        `parse_query`, `answer_at_qname`, `render_at_qname` and `_done` make
        of it, without their intermediate values (tested equal to them).
        Another plain query comes back parsed, for `_general`; None: take
        the full path, which also judges malformed and unusual queries."""
        try:
            n = len(data)
            if n < 17 or data[2] & 0xF8 or data[3] & 0x0F:  # QR, opcode, RCODE
                return None
            counts = data[4:12]
            if counts != _COUNTS_PLAIN and counts != _COUNTS_OPT:
                return None
            pos = 12
            while True:
                length = data[pos]
                if not length:
                    break
                if length > 63:
                    return None
                pos += length + 1
                if pos >= n:
                    return None
            pos += 1
            end = pos + 4  # end of the question
            if pos > 267 or end > n or data[pos + 2] != 0 or data[pos + 3] != 1:  # CLASS IN
                return None
            qtype = (data[pos] << 8) | data[pos + 1]
            if qtype in _NOT_AT_QNAME:
                return None
            options = self.options
            if counts == _COUNTS_PLAIN:
                opt = b""
                payload, do = 0, False
                limit = UDP_MIN if transport == "udp" else TCP_LIMIT
            else:
                if (
                    end + 11 > n
                    or data[end : end + 3] != _ROOT_OPT
                    or data[end + 6]  # EDNS version
                    or data[end + 9] or data[end + 10]  # RDLENGTH: no options
                ):
                    return None
                do = bool(data[end + 7] & 0x80)
                opt = opt_record(options.udp_payload, 0, do, ())
                payload = (data[end + 3] << 8) | data[end + 4]
                if transport == "udp":
                    limit = max(UDP_MIN, min(payload, options.udp_payload))
                else:
                    limit = TCP_LIMIT
            qname = data[12:pos].lower()
            zone = self.table.index.find_zone(qname)
            body = b""
            if zone is not None and zone.active:
                if zone.cuts or zone.dnames:
                    found = zone.lookup(qname)
                    node = found.node if found.cut is None and found.dname is None else None
                else:
                    node = zone.nodes.get(qname)
                if node and qtype not in _ADDITIONAL_FOR:
                    for rrset in node:
                        if rrset.rdtype == qtype:
                            body = rrset.at_qname()  # empty for compressed types
                            break
            if not body or end + len(body) + len(opt) > limit:
                # Not a plain answer (or too big: the general path truncates).
                # The query is parsed already: hand it over as `parse_query` would.
                edns = Edns(0, payload, do, (), None) if opt else None
                flags = (data[2] << 8) | data[3]
                return Query((data[0] << 8) | data[1], flags, 0, qname, data[12:end], qtype, 1,
                             edns, None, data)
            assert zone is not None
            records = rrset.records
            reply = (
                data[:2]
                + _DIRECT_HEAD.pack(0x8400 | ((data[2] & 0x01) << 8), 1, len(records), 0,
                                    1 if opt else 0)
                + data[12:end]
                + body
                + opt
            )
        except Exception:  # noqa: BLE001  (malformed, or a bug: the full path judges and logs)
            return None
        stat: StatKey = (transport, zone.origin_text, qtype, 0)
        stat = self._stats.setdefault(stat, stat)
        self.metrics.hits[stat] += 1
        deps = self._deps.get(zone.origin)
        if deps is None or deps[0][1] is not zone.token:
            deps = self._deps[zone.origin] = ((zone.origin, zone.token),)
        self._caches[transport].put(data, pos, (reply[2:], stat, _ANSWER, end, deps))
        return reply

    def _general(self, query: Query, data: bytes, peer: Peer, transport: str) -> bytes | None:
        """`_answer` for a plain query that `_direct` parsed and found to be no
        plain answer (so no transfer, NOTIFY, TSIG or cookie, and no need to
        try `answer_at_qname` again)."""
        try:
            limit = TCP_LIMIT if transport == "tcp" else udp_limit(query, self.options.udp_payload)
            ans = answer(query, self.table.index, self._chaos)
            reply = render(ans, query, limit, self.options.udp_payload)
            return self._done(data, peer, transport, query, reply, ans, ans.zones)
        except Exception:  # one bad query must never take the server down
            log.exception("internal error answering qname=%r qtype=%s", query.qname, query.qtype)
            self.metrics.hits[(transport, "", query.qtype, Rcode.SERVFAIL)] += 1
            return header_only(data, Rcode.SERVFAIL)

    # -- the full path ----------------------------------------------------
    def _slow(self, data: bytes, peer: Peer, transport: str) -> bytes | TransferRequest | None:
        try:
            query = parse_query(data)
        except Unanswerable:
            self.metrics.dropped["unanswerable"] += 1
            return None
        except BadQuery as bad:
            self.metrics.hits[(transport, "", 0, bad.rcode)] += 1
            return bad.reply
        try:
            return self._answer(query, data, peer, transport)
        except Exception:  # one bad query must never take the server down
            log.exception("internal error answering qname=%r qtype=%s", query.qname, query.qtype)
            self.metrics.hits[(transport, "", query.qtype, Rcode.SERVFAIL)] += 1
            return header_only(data, Rcode.SERVFAIL)

    def _answer(
        self, query: Query, data: bytes, peer: Peer, transport: str
    ) -> bytes | TransferRequest | None:
        if query.opcode == _NOTIFY:
            if self.notify_handler is not None:
                return self.notify_handler.notify(query, peer)
            return header_only(data, Rcode.REFUSED)
        qtype = query.qtype
        if (qtype == AXFR or qtype == IXFR) and query.qclass == 1:
            if transport == "tcp" and self.transfers is not None:
                return TransferRequest(query)
            if qtype == AXFR and transport == "udp":
                notimp = Answer(Outcome.NOTIMP, Rcode.NOTIMP, False)  # RFC 5936 4.2
                return render(notimp, query, udp_limit(query, self.options.udp_payload))
            if self.transfers is not None:
                return self.transfers.udp(query, peer)
        if query.tsig_offset is not None and self.transfers is not None:
            limit = TCP_LIMIT if transport == "tcp" else udp_limit(query, self.options.udp_payload)
            return self.transfers.signed(query, peer, limit, self.options.udp_payload)
        edns = query.edns
        limit = TCP_LIMIT if transport == "tcp" else udp_limit(query, self.options.udp_payload)
        if edns is not None and edns.cookie is not None and self.cookies is not None:
            check = self.cookies.check(edns.cookie, _packed(peer[0]))
            options = ((COOKIE_OPTION, check.reply),)
            if self.options.require_cookie and not check.valid and transport == "udp":
                ans = Answer(Outcome.BADCOOKIE, Rcode.BADCOOKIE, False, options=options)
            else:
                ans = answer(query, self.table.index, self._chaos)
                ans = ans._replace(options=ans.options + options)
            reply = render(ans, query, limit, self.options.udp_payload)
            renew_at = float(int.from_bytes(check.reply[12:16], "big") + REFRESH_S)
            return self._done(
                data, peer, transport, query, reply, ans, ans.zones, cacheable=False,
                verified=check.valid, cookie_renew_at=renew_at,
            )
        found = answer_at_qname(query, self.table.index)
        if found is not None:
            zone, rrset = found
            direct = render_at_qname(query, rrset, limit, self.options.udp_payload)
            if direct is not None:
                return self._done(data, peer, transport, query, direct, _DIRECT, (zone,))
        ans = answer(query, self.table.index, self._chaos)
        reply = render(ans, query, limit, self.options.udp_payload)
        return self._done(data, peer, transport, query, reply, ans, ans.zones)

    def _done(
        self,
        data: bytes,
        peer: Peer,
        transport: str,
        query: Query,
        reply: bytes,
        ans: Answer,
        zones: tuple[Zone, ...],
        cacheable: bool = True,
        verified: bool = False,
        cookie_renew_at: float | None = None,
    ) -> bytes | None:
        """Count a reply, cache it, and rate-limit it (unless the client is
        `verified` by a valid server cookie). A reply carrying a server cookie
        is kept for that client only, until the cookie is due for renewal."""
        if len(zones) == 1:
            zone = zones[0]
            stat: StatKey = (transport, zone.origin_text, query.qtype, int(ans.rcode))
            shared = self._deps.get(zone.origin)
            if shared is None or shared[0][1] is not zone.token:
                shared = self._deps[zone.origin] = ((zone.origin, zone.token),)
            deps: tuple[tuple[bytes, object], ...] = shared
        else:
            stat = (transport, zones[0].origin_text if zones else "", query.qtype, int(ans.rcode))
            deps = tuple((zone.origin, zone.token) for zone in zones)
        # Entries share these small tuples: ~150 bytes less per cached reply.
        stat = self._stats.setdefault(stat, stat)
        self.metrics.hits[stat] += 1
        if reply[2] & (TC >> 8):
            self.metrics.truncated[transport] += 1
        question_end = 12 + len(query.question)
        entry: _Entry = (reply[2:], stat, ans.outcome.value, question_end, deps)
        if cacheable and query.tsig_offset is None:
            self._caches[transport].put(data, question_end - 4, entry)
        elif (
            cookie_renew_at is not None
            and transport == "udp"
            and ans.outcome is not Outcome.BADCOOKIE
            and self.options.cache_entries > 0
        ):
            if len(self._cookie_replies) >= max(1000, self.options.cache_entries // 4):
                self._cookie_replies.clear()
            self._cookie_replies[(peer[0], data[2:])] = (*entry, cookie_renew_at, verified)
        if self.rrl is not None and transport == "udp" and not verified:
            return self._limited(data, peer, entry, reply)
        return reply

    def _limited(self, data: bytes, peer: Peer, entry: _Entry, reply: bytes) -> bytes | None:
        assert self.rrl is not None
        outcome, question_end, deps = entry[2], entry[3], entry[4]
        if outcome in _BY_QNAME:
            name = data[12 : question_end - 4].lower()
        else:
            name = deps[0][0] if deps else b""
        action = self.rrl.decide(peer[0], outcome, name)
        if action is Action.SEND:
            return reply
        if action is Action.DROP:
            self.metrics.dropped["rrl"] += 1
            return None
        # SLIP: header and question only, TC set, so the client retries on TCP
        self.metrics.truncated["udp"] += 1
        flags = int.from_bytes(reply[2:4], "big") | TC
        return reply[:2] + flags.to_bytes(2, "big") + b"\x00\x01" + bytes(6) + data[12:question_end]


def _packed(ip: str) -> bytes:
    if ":" in ip:
        return socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
    return socket.inet_aton(ip)
