"""Compare two servers' replies to one query, aspect by aspect.

What counts (shared/conformance/README.md): records are grouped into RRsets by
lower-cased owner, class, type (and the type an RRSIG covers); each RRset's TTL
and its set of rdata in canonical form (RFC 4034 6.2) are compared, order ignored.
Hard aspects fail the test; soft ones (additional section, EDNS options and
payload, the content of two truncated answers) are reported only.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rrset

from .corpus import Query
from .send import Exchange

# Header bits compared one by one, so that `ambiguous[flags.aa]` can excuse one of them.
_FLAG_BITS: tuple[tuple[str, int], ...] = (
    ("qr", dns.flags.QR),
    ("aa", dns.flags.AA),
    ("tc", dns.flags.TC),
    ("rd", dns.flags.RD),
    ("ra", dns.flags.RA),
    ("z", 0x0040),
    ("ad", dns.flags.AD),
    ("cd", dns.flags.CD),
)
_SOFT_ASPECTS = ("additional", "edns.payload", "edns.options", "edns.flags")


@dataclass(frozen=True, slots=True)
class Rules:
    """Documented relaxations for one comparison, each reported as a soft difference."""

    # zonehost's store numbers SOA serials itself (bumped on every change, RFC 1982
    # arithmetic), so an imported file's serial is not kept; RFC 1035 leaves the serial
    # to the primary. False: compare SOA rdata without it and report it as `*.serial`.
    soa_serial: bool = True


STRICT = Rules()


class Verdict(enum.Enum):
    FAIL = "HARD"  # a hard difference nobody excused
    AMBIGUOUS = "ambiguous"  # excused by an ambiguity mark on the query
    SOFT_QUERY = "soft-query"  # the query is marked `soft`
    SOFT = "soft"  # a soft aspect


@dataclass(frozen=True, slots=True)
class Difference:
    query: Query
    aspect: str  # e.g. "rcode", "flags.aa", "answer.ttl", "axfr"
    detail: str
    left: str
    right: str
    verdict: Verdict

    @property
    def fails(self) -> bool:
        return self.verdict is Verdict.FAIL


@dataclass(frozen=True, slots=True)
class RRsetKey:
    owner: str  # lower-cased, absolute
    rdclass: dns.rdataclass.RdataClass
    rdtype: dns.rdatatype.RdataType
    covers: dns.rdatatype.RdataType

    def __str__(self) -> str:
        text = f"{self.owner} {dns.rdataclass.to_text(self.rdclass)} "
        text += dns.rdatatype.to_text(self.rdtype)
        if self.covers:
            text += f"({dns.rdatatype.to_text(self.covers)})"
        return text


@dataclass(frozen=True, slots=True)
class RRsetValue:
    ttl: int
    rdata: frozenset[bytes]  # canonical wire form
    texts: tuple[str, ...]  # presentation form, sorted, for the report
    serials: frozenset[int] = frozenset()  # SOA serials left out of rdata by the rules


@dataclass(frozen=True, slots=True)
class Parsed:
    """A reply as compare needs it: the first message, and for AXFR every record in order."""

    wires: tuple[bytes, ...]
    first: dns.message.Message
    records: tuple[dns.rrset.RRset, ...]  # AXFR: one record per RRset, in transfer order


def parse(exchange: Exchange, *, axfr: bool) -> Parsed | str:
    """The parsed reply, or a short text saying why there is none."""
    if not exchange.wires:
        return exchange.error or "no reply"
    try:
        messages = [
            dns.message.from_wire(w, one_rr_per_rrset=axfr, ignore_trailing=False)
            for w in exchange.wires
        ]
    except Exception as exc:  # noqa: BLE001 - any parse failure is a finding, not a crash
        return f"unparseable reply: {type(exc).__name__}: {exc}"
    records: tuple[dns.rrset.RRset, ...] = ()
    if axfr:
        records = tuple(rrset for m in messages for rrset in m.answer)
    return Parsed(wires=exchange.wires, first=messages[0], records=records)


def compare(
    query: Query,
    left_name: str,
    left: Exchange,
    right_name: str,
    right: Exchange,
    rules: Rules = STRICT,
) -> list[Difference]:
    found = _Collector(query)
    a = parse(left, axfr=query.axfr)
    b = parse(right, axfr=query.axfr)
    for name, side, exch in ((left_name, a, left), (right_name, b, right)):
        if isinstance(side, Parsed) and not exch.tcp and len(side.wires[0]) > query.udp_limit:
            found.add(
                "size",
                f"UDP reply larger than the client allowed ({query.udp_limit})",
                f"{name}: {len(side.wires[0])} bytes",
                "",
                hard=True,
            )
    if isinstance(a, str) or isinstance(b, str):
        why_a = a if isinstance(a, str) else "answered"
        why_b = b if isinstance(b, str) else "answered"
        if (why_a != why_b and "answered" in (why_a, why_b)) or "unparseable" in why_a + why_b:
            found.add(
                "response",
                "whether a parseable answer came",
                _short(why_a),
                _short(why_b),
                hard=True,
            )
        return found.items
    _compare_header(found, a.first, b.first)
    _compare_question(found, a.first, b.first)
    _compare_edns(found, a.first, b.first)
    if query.axfr:
        _compare_axfr(found, a, b, rules)
        return found.items
    both_truncated = bool(a.first.flags & b.first.flags & dns.flags.TC)
    for index, section in ((1, "answer"), (2, "authority"), (3, "additional")):
        hard = section != "additional" and not both_truncated
        _compare_rrsets(
            found,
            section,
            _group(a.first.sections[index], rules),
            _group(b.first.sections[index], rules),
            hard=hard,
        )
    return found.items


class _Collector:
    def __init__(self, query: Query) -> None:
        self.query = query
        self.items: list[Difference] = []

    def add(self, aspect: str, detail: str, left: str, right: str, *, hard: bool) -> None:
        if self.query.soft:
            verdict = Verdict.SOFT_QUERY
        elif self.query.ambiguous is not None and self.query.ambiguous.covers(aspect):
            verdict = Verdict.AMBIGUOUS
        elif not hard or aspect.startswith(_SOFT_ASPECTS):
            verdict = Verdict.SOFT
        else:
            verdict = Verdict.FAIL
        self.items.append(Difference(self.query, aspect, detail, left, right, verdict))


def _short(text: str) -> str:
    return text if len(text) < 120 else text[:117] + "..."


def _compare_header(found: _Collector, a: dns.message.Message, b: dns.message.Message) -> None:
    if a.opcode() != b.opcode():
        found.add(
            "opcode", "", dns.opcode.to_text(a.opcode()), dns.opcode.to_text(b.opcode()), hard=True
        )
    if a.rcode() != b.rcode():
        found.add(
            "rcode", "", dns.rcode.to_text(a.rcode()), dns.rcode.to_text(b.rcode()), hard=True
        )
    for name, bit in _FLAG_BITS:
        x, y = bool(a.flags & bit), bool(b.flags & bit)
        if x != y:
            found.add(f"flags.{name}", "", str(int(x)), str(int(y)), hard=True)


def _question_text(msg: dns.message.Message) -> list[str]:
    # Name.to_text keeps the case as received: the echo must be exact (0x20).
    return [
        f"{r.name.to_text()} {dns.rdataclass.to_text(r.rdclass)} {dns.rdatatype.to_text(r.rdtype)}"
        for r in msg.sections[0]
    ]


def _compare_question(found: _Collector, a: dns.message.Message, b: dns.message.Message) -> None:
    qa, qb = _question_text(a), _question_text(b)
    if qa != qb:
        found.add("question", "", "; ".join(qa) or "(empty)", "; ".join(qb) or "(empty)", hard=True)


def _compare_edns(found: _Collector, a: dns.message.Message, b: dns.message.Message) -> None:
    if (a.edns >= 0) != (b.edns >= 0):
        found.add("edns", "OPT present", str(a.edns >= 0), str(b.edns >= 0), hard=True)
        return
    if a.edns < 0:
        return
    if a.edns != b.edns:
        found.add("edns.version", "", str(a.edns), str(b.edns), hard=True)
    do_a, do_b = bool(a.ednsflags & dns.flags.DO), bool(b.ednsflags & dns.flags.DO)
    if do_a != do_b:
        found.add("edns.do", "", str(int(do_a)), str(int(do_b)), hard=True)
    other = ~(dns.flags.DO | 0xFFFF0000) & 0xFFFFFFFF
    if (a.ednsflags & other) != (b.ednsflags & other):
        found.add("edns.flags", "", hex(a.ednsflags), hex(b.ednsflags), hard=False)
    if a.payload != b.payload:
        found.add("edns.payload", "", str(a.payload), str(b.payload), hard=False)
    opts_a = sorted(f"{o.otype}:{o.to_wire().hex()}" for o in a.options)
    opts_b = sorted(f"{o.otype}:{o.to_wire().hex()}" for o in b.options)
    if opts_a != opts_b:
        found.add(
            "edns.options",
            "",
            " ".join(opts_a) or "(none)",
            " ".join(opts_b) or "(none)",
            hard=False,
        )


def _group(rrsets: Iterable[dns.rrset.RRset], rules: Rules) -> dict[RRsetKey, RRsetValue]:
    ttls: dict[RRsetKey, int] = {}
    rdatas: dict[RRsetKey, dict[bytes, str]] = {}
    serials: dict[RRsetKey, set[int]] = {}
    for rrset in rrsets:
        key = RRsetKey(rrset.name.to_text().lower(), rrset.rdclass, rrset.rdtype, rrset.covers)
        ttls[key] = min(ttls.get(key, rrset.ttl), rrset.ttl)
        bucket = rdatas.setdefault(key, {})
        for rd in rrset:
            if not rules.soa_serial and isinstance(rd, dns.rdtypes.ANY.SOA.SOA):
                serials.setdefault(key, set()).add(rd.serial)
                bucket[_canonical(rd.replace(serial=0))] = rd.to_text()
            else:
                bucket[_canonical(rd)] = rd.to_text()
    return {
        key: RRsetValue(
            ttls[key],
            frozenset(bucket),
            tuple(sorted(bucket.values())),
            frozenset(serials.get(key, ())),
        )
        for key, bucket in rdatas.items()
    }


def _canonical(rd: dns.rdata.Rdata) -> bytes:
    # to_digestable is RFC 4034 6.2: uncompressed, names lower-cased in the listed types.
    return rd.to_digestable()


def _describe(value: RRsetValue | None) -> str:
    if value is None:
        return "(absent)"
    return f"ttl {value.ttl}: " + " | ".join(value.texts)


def _compare_rrsets(
    found: _Collector,
    section: str,
    a: dict[RRsetKey, RRsetValue],
    b: dict[RRsetKey, RRsetValue],
    *,
    hard: bool,
) -> None:
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            found.add(section, str(key), _describe(x), _describe(y), hard=hard)
        elif x.rdata != y.rdata:
            found.add(f"{section}.rdata", str(key), _describe(x), _describe(y), hard=hard)
        elif x.ttl != y.ttl:
            found.add(f"{section}.ttl", str(key), str(x.ttl), str(y.ttl), hard=hard)
        if x is not None and y is not None and x.serials != y.serials:
            serial_a, serial_b = (" ".join(map(str, sorted(v.serials))) for v in (x, y))
            found.add(f"{section}.serial", str(key), serial_a, serial_b, hard=False)


def _compare_axfr(found: _Collector, a: Parsed, b: Parsed, rules: Rules) -> None:
    if not a.records or not b.records:
        # One side did not transfer at all: one line, not one per missing RRset.
        if a.records or b.records:
            count = [f"{len(p.records)} records in {len(p.wires)} messages" for p in (a, b)]
            found.add("axfr", "zone transfer", count[0], count[1], hard=True)
        return
    shapes = [_axfr_shape(p.records) for p in (a, b)]
    if shapes[0] != shapes[1]:
        found.add("axfr.soa", "SOA first and last", shapes[0], shapes[1], hard=True)
    _compare_rrsets(
        found,
        "axfr",
        _group(_without_last_soa(a.records), rules),
        _group(_without_last_soa(b.records), rules),
        hard=True,
    )


def _axfr_shape(records: Sequence[dns.rrset.RRset]) -> str:
    if not records:
        return "no records"
    first, last = records[0], records[-1]
    if first.rdtype != dns.rdatatype.SOA or last.rdtype != dns.rdatatype.SOA or len(records) < 2:
        return "not framed by SOA"
    if first != last:
        return "first and last SOA differ"
    return "ok"


def _without_last_soa(records: Sequence[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
    if len(records) >= 2 and records[-1].rdtype == dns.rdatatype.SOA:
        return list(records[:-1])
    return list(records)
