"""Queries from the wire and answers to it, written by hand for speed.

`parse_query` reads the header, the one question and the additional section
(OPT, TSIG) and nothing else; it follows NSD on what is malformed:
- shorter than a header, or QR=1: dropped (`Unanswerable`);
- an opcode other than QUERY/NOTIFY: NOTIMP, header only;
- RCODE set, QDCOUNT != 1, records in answer/authority (except IXFR's
  authority SOA), compression or extended labels in the question, a name over
  255 octets, a short question, a second OPT, an OPT not owned by the root,
  bad option lengths, a TSIG not last, any other additional record: FORMERR,
  header only;
- bytes after the last counted record are ignored.

`render` is the only place that decides truncation: RRsets are all or
nothing; one that does not fit in the answer or authority section sets TC
and ends the message there; one that does not fit in the additional section
is left out (as NSD does).
"""

from __future__ import annotations

import struct

from nameserver.message import AA, QR, RD, TC, Answer, Edns, Opcode, Placed, Query, Rcode
from nameserver.rrwire import IXFR, OPT, QNAME_POINTER, TSIG, PreparedRRset

_HEADER = struct.Struct("!HHHHHH")
_U16 = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")  # TYPE CLASS TTL RDLEN
_OPT_FIXED = struct.Struct("!HHIH")
_QFIXED = struct.Struct("!HH")
_OPT_HEAD = struct.Struct("!HI")  # CLASS (payload), TTL (ext. rcode, version, flags)
_ROOT_OPT = b"\x00\x00\x29"  # root owner, TYPE 41

MAX_NAME = 255
UDP_MIN = 512


class WireError(Exception):
    """A query that cannot be answered normally."""


class Unanswerable(WireError):
    """The message gets no reply at all (too short for a header, or a response)."""


class BadQuery(WireError):
    """The message gets a header-only error reply."""

    def __init__(self, rcode: Rcode, reply: bytes) -> None:
        super().__init__(rcode.name)
        self.rcode = rcode
        self.reply = reply


def header_only(data: bytes, rcode: Rcode) -> bytes:
    """A 12-octet reply: the query's ID, opcode and RD bit, QR and `rcode`."""
    flags = int.from_bytes(data[2:4], "big")
    return data[:2] + _U16.pack(QR | (flags & (0x7800 | RD)) | rcode) + bytes(8)


def _read_name(data: bytes, pos: int) -> int:
    """Offset past a name in the additional section; backward pointers allowed."""
    end = -1
    seen = 0
    n = len(data)
    while True:
        if pos >= n:
            raise IndexError
        length = data[pos]
        if length == 0:
            return pos + 1 if end < 0 else end
        if length & 0xC0 == 0xC0:
            if pos + 1 >= n:
                raise IndexError
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= pos:
                raise ValueError("forward pointer")
            pos = target
            continue
        if length > 63:
            raise ValueError("extended label")
        seen += length + 1
        if seen > MAX_NAME:
            raise ValueError("name too long")
        pos += length + 1


def parse_query(data: bytes) -> Query:
    """Parse one query message. Raises `Unanswerable` or `BadQuery`."""
    if len(data) < 12:
        raise Unanswerable("short header")
    qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    if flags & QR:
        raise Unanswerable("response")
    opcode = (flags >> 11) & 0xF
    if opcode != Opcode.QUERY and opcode != Opcode.NOTIFY:
        raise BadQuery(Rcode.NOTIMP, header_only(data, Rcode.NOTIMP))
    if flags & 0xF or qdcount != 1:
        raise BadQuery(Rcode.FORMERR, header_only(data, Rcode.FORMERR))
    # Question: uncompressed labels only (a pointer here would point back into
    # the header, and NSD rejects it).
    pos = 12
    n = len(data)
    while True:
        if pos >= n:
            raise BadQuery(Rcode.FORMERR, header_only(data, Rcode.FORMERR))
        length = data[pos]
        if length == 0:
            pos += 1
            break
        if length > 63:
            raise BadQuery(Rcode.FORMERR, header_only(data, Rcode.FORMERR))
        pos += length + 1
    if pos - 12 > MAX_NAME or pos + 4 > n:
        raise BadQuery(Rcode.FORMERR, header_only(data, Rcode.FORMERR))
    qtype, qclass = _QFIXED.unpack_from(data, pos)
    qname = data[12:pos].lower()
    question = data[12 : pos + 4]
    pos += 4
    edns: Edns | None = None
    tsig_offset: int | None = None
    if (
        arcount == 1
        and not ancount
        and not nscount
        and data[pos : pos + 3] == _ROOT_OPT
        and data[pos + 9 : pos + 11] == b"\0\0"
    ):
        # The usual case: one option-less OPT (root owner, RDLEN 0).
        payload, ttl = _OPT_HEAD.unpack_from(data, pos + 3)
        edns = Edns((ttl >> 16) & 0xFF, payload, bool(ttl & 0x8000), (), None)
    elif ancount or nscount or arcount:
        try:
            edns, tsig_offset = _parse_records(data, pos, ancount, nscount, arcount, qtype)
        except (IndexError, ValueError, struct.error):
            raise BadQuery(Rcode.FORMERR, header_only(data, Rcode.FORMERR)) from None
    return Query(qid, flags, opcode, qname, question, qtype, qclass, edns, tsig_offset, data)


def _parse_records(
    data: bytes, pos: int, ancount: int, nscount: int, arcount: int, qtype: int
) -> tuple[Edns | None, int | None]:
    if ancount or (nscount and qtype != IXFR):
        raise ValueError("records in answer or authority")
    for _ in range(nscount):  # IXFR carries the client's SOA here
        pos = _read_name(data, pos)
        rdlen = _RR_FIXED.unpack_from(data, pos)[3]
        pos += 10 + rdlen
        if pos > len(data):
            raise IndexError
    edns: Edns | None = None
    tsig_offset: int | None = None
    for index in range(arcount):
        start = pos
        pos = _read_name(data, pos)
        rtype, rclass, ttl, rdlen = _RR_FIXED.unpack_from(data, pos)
        pos += 10
        end = pos + rdlen
        if end > len(data):
            raise IndexError
        if rtype == OPT:
            if edns is not None or pos - 10 != start + 1 or data[start] != 0:
                raise ValueError("second OPT, or OPT not owned by the root")
            edns = _parse_opt(data, pos, end, rclass, ttl)
        elif rtype == TSIG and index == arcount - 1:
            tsig_offset = start
        else:
            raise ValueError("unexpected additional record")
        pos = end
    return edns, tsig_offset


def _parse_opt(data: bytes, pos: int, end: int, payload: int, ttl: int) -> Edns:
    options: list[tuple[int, bytes]] = []
    cookie: bytes | None = None
    while pos < end:
        if pos + 4 > end:
            raise ValueError("short option header")
        code, length = _QFIXED.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise ValueError("option runs past OPT")
        value = data[pos : pos + length]
        pos += length
        if code == 10:  # COOKIE, RFC 7873 5.2.2: 8, or 16 to 40 octets
            if length != 8 and not 16 <= length <= 40:
                raise ValueError("malformed cookie")
            if cookie is None:
                cookie = value
        options.append((code, value))
    version = (ttl >> 16) & 0xFF
    return Edns(version, payload, bool(ttl & 0x8000), tuple(options), cookie)


def udp_limit(query: Query, server_payload: int) -> int:
    """Largest UDP reply this query may get (RFC 6891 6.2.5)."""
    edns = query.edns
    if edns is None:
        return UDP_MIN
    return max(UDP_MIN, min(edns.payload, server_payload))


class _Writer:
    """A message under construction with RFC 1035 4.1.4 name compression."""

    __slots__ = ("buf", "names", "qname")

    def __init__(self, header: bytes, question: bytes, qname: bytes) -> None:
        self.buf = bytearray(header)
        self.buf += question
        self.qname = qname
        self.names: dict[bytes, int] | None = None  # made on the first name not the qname

    def _table(self) -> dict[bytes, int]:
        names: dict[bytes, int] = {}
        qname = self.qname
        pos = 0
        while qname[pos]:
            names[qname[pos:]] = 12 + pos
            pos += qname[pos] + 1
        self.names = names
        return names

    def name(self, name: bytes) -> None:
        buf = self.buf
        names = self.names if self.names is not None else self._table()
        base = len(buf)
        pos = 0
        while name[pos]:
            suffix = name[pos:]
            offset = names.get(suffix)
            if offset is not None:
                buf += name[:pos]
                buf += _U16.pack(0xC000 | offset)
                return
            if base + pos < 0x4000:
                names[suffix] = base + pos
            pos += name[pos] + 1
        buf += name

    def owner(self, owner: bytes) -> bytes:
        """Write an owner name; returns the bytes that repeat it (a pointer)."""
        if owner == self.qname:
            self.buf += QNAME_POINTER
            return QNAME_POINTER
        buf = self.buf
        mark = len(buf)
        self.name(owner)
        if len(buf) - mark == 2 or mark >= 0x4000:
            return bytes(buf[mark:])
        return _U16.pack(0xC000 | mark)

    def rrset(self, owner: bytes, rrset: PreparedRRset) -> int:
        """Append every record of `rrset`; returns how many."""
        buf = self.buf
        records = rrset.records
        ref = self.owner(owner)
        if records:
            buf += ref.join(records)
            return len(records)
        compressed = rrset.compressed
        for i, crec in enumerate(compressed):
            if i:
                buf += ref
            at = len(buf) + 8  # RDLENGTH, after TYPE CLASS TTL
            buf += crec.lead
            for name in crec.names:
                self.name(name)
            buf += crec.tail
            _U16.pack_into(buf, at, len(buf) - at - 2)
        return len(compressed)

    def section(self, items: tuple[Placed, ...], limit: int, must_fit: bool) -> tuple[int, bool]:
        """Write whole RRsets while they fit; returns (records written, truncated)."""
        count = 0
        buf = self.buf
        for owner, rrset in items:
            mark = len(buf)
            written = self.rrset(owner, rrset)
            if len(buf) > limit:
                del buf[mark:]
                # forget names that pointed into what was cut
                if self.names is not None:
                    self.names = {k: v for k, v in self.names.items() if v < mark}
                if must_fit:
                    return count, True
                continue
            count += written
        return count, False


def opt_record(
    payload: int, ext_rcode: int, do: bool, options: tuple[tuple[int, bytes], ...]
) -> bytes:
    if not options:
        key = (payload, ext_rcode, do)
        cached = _PLAIN_OPT.get(key)
        if cached is None:
            cached = _PLAIN_OPT[key] = _opt_record_uncached(payload, ext_rcode, do, ())
        return cached
    return _opt_record_uncached(payload, ext_rcode, do, options)


def _opt_record_uncached(
    payload: int, ext_rcode: int, do: bool, options: tuple[tuple[int, bytes], ...]
) -> bytes:
    rdata = b"".join(_QFIXED.pack(code, len(value)) + value for code, value in options)
    ttl = (ext_rcode << 24) | (0x8000 if do else 0)
    return b"\0" + _OPT_FIXED.pack(OPT, payload, ttl, len(rdata)) + rdata


_PLAIN_OPT: dict[tuple[int, int, bool], bytes] = {}


def render_at_qname(
    query: Query, rrset: PreparedRRset, limit: int, server_payload: int = 1232
) -> bytes | None:
    """`render` of the commonest answer, one RRset owned by the query name
    (AA, NOERROR, nothing else), straight from its prepared bytes; None when
    it does not fit, for `render` to truncate. Tested equal to `render`."""
    edns = query.edns
    opt = opt_record(server_payload, 0, edns.do, ()) if edns is not None else b""
    records = rrset.at_qname()
    if 12 + len(query.question) + len(records) + len(opt) > limit:
        return None
    flags = QR | AA | (query.flags & (0x7800 | RD))
    header = _HEADER.pack(query.id, flags, 1, len(rrset.records), 0, 1 if opt else 0)
    return header + query.question + records + opt


def render(answer: Answer, query: Query, limit: int, server_payload: int = 1232) -> bytes:
    """The reply to `query` as wire bytes, at most `limit` octets."""
    flags = QR | (query.flags & (0x7800 | RD)) | (answer.rcode & 0xF)
    if answer.aa:
        flags |= AA
    edns = query.edns
    opt = b""
    if edns is not None:
        do = edns.do and answer.rcode != Rcode.BADVERS
        opt = opt_record(server_payload, answer.rcode >> 4, do, answer.options)
    if not answer.echo_question:
        header = _HEADER.pack(query.id, flags, 1, 0, 0, 0)
        return header[:4] + bytes([0, 0, 0, 0, 0, 0, 0, 1 if opt else 0]) + opt
    if answer.answer or not answer.authority or len(answer.zones) != 1:
        return _render(answer, query, limit, flags, opt)
    # Negative answers and referrals: the same sections for every query name of
    # this length below their first owner, short of one case (see _SECTIONS).
    qname = query.qname
    anchor, first = answer.authority[0]
    if not qname.endswith(anchor):
        return _render(answer, query, limit, flags, opt)
    items = answer.authority + answer.additional
    key = (len(qname), anchor, id(first), len(items))
    label = _label_above(qname, anchor)
    token = answer.zones[0].token
    known = _SECTIONS.get(key)
    if known is not None and known[0] is token and label not in known[1]:
        sections = known[2]
        if 12 + len(query.question) + len(sections) + len(opt) > limit:
            return _render(answer, query, limit, flags, opt)
        header = _HEADER.pack(query.id, flags, 1, 0, known[3], known[4] + (1 if opt else 0))
        return header + query.question + sections + opt
    reply = _render(answer, query, limit, flags, opt)
    ns, ar = _HEADER.unpack_from(reply)[4:]
    ar -= 1 if opt else 0
    labels = _labels_below(anchor, items)
    if (
        label not in labels
        and not reply[2] & (TC >> 8)
        and ns + ar == sum(rrset.count for _, rrset in items)  # everything fitted
    ):
        if len(_SECTIONS) >= SECTIONS_MAX:
            _SECTIONS.clear()
        sections = reply[12 + len(query.question) : len(reply) - len(opt)]
        _SECTIONS[key] = (token, labels, sections, ns, ar)
    return reply


# Kept sections: the authority and additional sections rendered once, for
# every query name of one length below `anchor` (the first authority owner:
# the zone's apex for a negative answer, the delegation point for a
# referral), as (token, labels, sections, NSCOUNT, ARCOUNT).
#
# Compression makes a section depend on the query name: a name written may
# point into it. Every name of that length ending in `anchor` puts the same
# suffixes at the same offsets, except those longer than `anchor`; a name
# written can only end in one of those if it is below `anchor` and has the
# query name's label just above `anchor` (`labels` holds those labels of
# every name written). With that label the sections are rendered afresh.
#
# `token` is the zone snapshot's they were rendered from: a zone is never
# changed, and while the token is held the key's id() of the first RRset
# can only be that snapshot's. A plain tuple of strings, numbers and plain
# objects, holding no RRset: the collector stops tracking it after its
# first pass (a NamedTuple or a held RRset kept 6,000 entries tracked, 5 ms
# of every full collection).
_Sections = tuple[object, tuple[bytes, ...], bytes, int, int]
SECTIONS_MAX = 8192
_SECTIONS: dict[tuple[int, bytes, int, int], _Sections] = {}


def _label_above(name: bytes, anchor: bytes) -> bytes:
    """The label of `name` just above its suffix `anchor` (b"" if none)."""
    cut = len(name) - len(anchor)
    pos = 0
    while pos < cut:
        step = name[pos] + 1
        if pos + step >= cut:
            return name[pos : pos + step]
        pos += step
    return b""


def _labels_below(anchor: bytes, items: tuple[Placed, ...]) -> tuple[bytes, ...]:
    names = [owner for owner, _ in items]
    names += [name for _, rrset in items for rec in rrset.compressed for name in rec.names]
    return tuple({
        _label_above(name, anchor)
        for name in names
        if len(name) > len(anchor) and name.endswith(anchor)
    })


def _render(answer: Answer, query: Query, limit: int, flags: int, opt: bytes) -> bytes:
    header = _HEADER.pack(query.id, flags, 1, 0, 0, 0)
    w = _Writer(header, query.question, query.qname)
    room = limit - len(opt)
    an = ns = ar = 0
    tc = False
    if answer.answer:
        an, tc = w.section(answer.answer, room, True)
    if answer.authority and not tc:
        ns, tc = w.section(answer.authority, room, True)
    if answer.additional and not tc:
        ar, _ = w.section(answer.additional, room, False)
    buf = w.buf
    if tc:
        flags |= TC
    struct.pack_into("!HHHHH", buf, 2, flags, 1, an, ns, ar + (1 if opt else 0))
    buf += opt
    return bytes(buf)
