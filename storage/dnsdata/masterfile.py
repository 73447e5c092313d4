"""RFC 1035 master files: from_text() reads a whole zone, to_text() writes one.

from_text() reports every problem of a file, each with its line, and raises
InvalidZone once. dnspython's zone reader stops at the first error, so this
module splits the file into logical records itself (parentheses, quotes,
comments) and hands each record's data to dnspython's rdata parser: an error
in one record cannot hide the next. Records on one plain line (the vast
majority) are split with str.split(); the others go through dnspython's
tokenizer.

Supported: $ORIGIN, $TTL, relative names, '@', a blank owner (the previous
owner), parentheses over several lines, comments, quoted strings with
escapes, class IN optional, TTL and class in either order, TTL units (1h30m),
RFC 3597 generic syntax. Refused: $INCLUDE (an import reads no other file)
and $GENERATE (expand it first, e.g. with `named-checkzone -D`; a range can
also hide millions of records). Records of one RRset with different TTLs
take the first TTL, as BIND does.

Speed: a generated 100,000-record zone (A, AAAA, MX, TXT, CNAME) parses in
2.8-3.8 s of CPU on the (shared, loaded) development machine, where
dnspython's own zone reader takes 7.1-7.8 s; to_text() takes 1.3-1.5 s:
    python -m storage.dnsdata.bench 100000
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.tokenizer
import dns.ttl

from storage.dnsdata.errors import InvalidName, InvalidZone, Problem, quote
from storage.dnsdata.names import IDNA_CODEC, name_from_text, owner_name
from storage.dnsdata.rrsets import (
    RRsetData,
    canonical_rrset,
    describe_rdata_error,
    parse_rdatatype,
    rdata_to_text,
    ttl_reasons,
)
from storage.dnsdata.rules import IMPORT_RULES, DnsRules, type_refusal
from storage.dnsdata.zonecheck import check_zone

T = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
Labels = tuple[bytes, ...]

# A line without these characters is one whole record: split() reads it.
_SPECIAL = re.compile(r'["\\();]')
# Quoted strings, escapes and comments, which hide parentheses and quotes.
_OPAQUE = re.compile(r'"(?:[^"\\]|\\.)*"|\\.|;.*')
_CLASSES = frozenset({"IN", "CH", "CHAOS", "HS", "HESIOD", "NONE", "ANY"})
_CLASS_NNN = re.compile(r"CLASS[0-9]+")
# Types whose text form is one token given straight to the constructor, as
# their from_text() does; it skips the tokenizer for most records.
_ADDRESS_TYPES: dict[T, Callable[[dns.rdataclass.RdataClass, T, str], dns.rdata.Rdata]] = {
    T.A: dns.rdtypes.IN.A.A,
    T.AAAA: dns.rdtypes.IN.AAAA.AAAA,
}


@dataclass(frozen=True, slots=True)
class ZoneContent:
    """A zone as read from a master file: the SOA apart, every other RRset canonical."""

    origin: dns.name.Name
    soa: dns.rdtypes.ANY.SOA.SOA | None
    soa_ttl: int | None
    rrsets: tuple[RRsetData, ...]


def from_text(
    text: str,
    origin: dns.name.Name,
    rules: DnsRules = IMPORT_RULES,
    require_soa: bool = False,
) -> ZoneContent:
    """Read the master file `text` of zone `origin` (absolute, e.g. from zone_origin()).

    Raises InvalidZone listing every problem (syntax, data, zone rules), each
    with its line number.
    """
    # A big zone allocates millions of objects and no cycles: the cyclic
    # collector's passes would cost 40% of the time (5.2 s instead of 3.0 s
    # for 100,000 records), so it pauses while this call runs.
    if not origin.is_absolute():
        raise ValueError(f"the origin must be absolute, got {origin}")
    collecting = gc.isenabled()
    gc.disable()
    try:
        reader = _Reader(origin.canonicalize(), rules)
        reader.read(text)
        return reader.result(require_soa)
    finally:
        if collecting:
            gc.enable()


def to_text(content: ZoneContent) -> str:
    """A master file of `content`: $ORIGIN, the SOA, then RRsets in canonical
    name order (apex first), names relative to the origin where possible.
    from_text() of the result gives back an equal ZoneContent."""
    origin = content.origin
    lines = [f"$ORIGIN {origin.to_text()}\n"]
    if content.soa is not None:
        ttl = content.soa_ttl if content.soa_ttl is not None else content.soa.minimum
        lines.append(f"@\t{ttl}\tIN\tSOA\t{content.soa.to_text(origin=origin)}\n")
    for rrset in sorted(content.rrsets, key=_canonical_order):
        owner = "@" if rrset.name == origin else rrset.name.relativize(origin).to_text()
        head = f"{owner}\t{rrset.ttl}\tIN\t{dns.rdatatype.to_text(rrset.rdtype)}\t"
        lines.extend(f"{head}{rdata_to_text(rd, origin)}\n" for rd in rrset.rdatas)
    return "".join(lines)


def _canonical_order(rrset: RRsetData) -> tuple[Labels, int]:
    # Reversed lower-case labels compare as RFC 4034 section 6.1 orders names,
    # without dns.name.Name's slower comparison.
    return tuple(reversed(rrset.name.labels)), int(rrset.rdtype)


@dataclass(slots=True)
class _Group:
    """The records of one (owner, type) met so far."""

    name: dns.name.Name
    ttl: int
    line: int
    rdatas: list[tuple[int, dns.rdata.Rdata]] = field(default_factory=list)


class _SkipRecord(Exception):
    """The current record has a problem, already noted."""


class _Reader:
    def __init__(self, origin: dns.name.Name, rules: DnsRules) -> None:
        self.zone_origin = origin
        self.rules = rules
        self.origin = origin  # the current $ORIGIN
        self.default_ttl: int | None = None  # $TTL
        self.last_ttl: int | None = None  # the last TTL a record stated
        self.soa_ttl_default: int | None = None  # the SOA minimum, when no $TTL
        self.owner: dns.name.Name | None = None
        self.owner_known = False  # False: no owner yet or the last one was refused
        self.problems: list[Problem] = []
        self.groups: dict[tuple[Labels, T], _Group] = {}
        self._names: dict[tuple[str, Labels], dns.name.Name | str] = {}
        self._rdata: dict[tuple[T, str, Labels], dns.rdata.Rdata | str] = {}
        self._refusals: dict[T, str | None] = {}

    # Reading

    def read(self, text: str) -> None:
        lines = text.removeprefix("\ufeff").split("\n")  # a BOM is no owner name
        count = len(lines)
        i = 0
        while i < count:
            line = lines[i].rstrip("\r")
            number = i + 1
            i += 1
            special = _SPECIAL.search(line)
            if special is not None and special.group() == ";":
                line = line[: special.start()]  # only a comment follows
                special = None
            if special is None:
                fields = line.split()
                if fields:
                    self._simple(number, fields, blank_owner=line[0] in " \t")
                continue
            parts = [line]
            depth, error = _depth(line)
            while error is None and depth > 0 and i < count:
                more = lines[i].rstrip("\r")
                i += 1
                parts.append(more)
                change, error = _depth(more)
                depth += change
            if error is None and depth > 0:
                error = "'(' is never closed"
            if error is None and depth < 0:
                error = "')' without a matching '('"
            if error is not None:
                self._problem(number, None, None, error)
                continue
            self._tokenized(number, "\n".join(parts))

    def _simple(self, line: int, fields: list[str], *, blank_owner: bool) -> None:
        first = fields[0]
        if first.startswith("$") and not blank_owner:
            self._directive(line, first, fields[1:])
            return
        at = 0 if blank_owner else 1
        owner = None if blank_owner else first
        position = [at]

        def next_field() -> str | None:
            index = position[0]
            position[0] = index + 1
            return fields[index] if index < len(fields) else None

        try:
            name, ttl, rdtype = self._header(line, owner, next_field)
        except _SkipRecord:
            return
        rest = fields[position[0]:]
        text = " ".join(rest)
        key = (rdtype, text, self.origin.labels)
        rdata = self._rdata.get(key)
        if rdata is None:
            try:
                constructor = _ADDRESS_TYPES.get(rdtype)
                if constructor is not None and len(rest) == 1:
                    rdata = constructor(IN, rdtype, rest[0])
                else:
                    rdata = dns.rdata.from_text(
                        IN, rdtype, text, self.origin, False, None, IDNA_CODEC
                    )
            except Exception as exc:  # noqa: BLE001 - any refusal of input is a problem
                rdata = describe_rdata_error(rdtype, text, exc)
            self._rdata[key] = rdata
        if isinstance(rdata, str):
            self._problem(line, name, rdtype, rdata)
            return
        self._add(line, name, ttl, rdtype, rdata)

    def _tokenized(self, line: int, record: str) -> None:
        tok = dns.tokenizer.Tokenizer(record, "<zone>", IDNA_CODEC)
        try:
            first = tok.get(want_leading=True)
            if first.is_whitespace():
                first = tok.get()
                if first.is_eol_or_eof():
                    return  # a blank or comment-only record
                tok.unget(first)
                owner = None
            elif first.is_eol_or_eof():
                return
            elif first.is_identifier():
                owner = first.value
            else:
                self._problem(line, None, None, "a record must start with its owner name")
                return
            if owner is not None and owner.startswith("$"):
                self._directive(line, owner, _rest_values(tok))
                return
        except dns.exception.DNSException as exc:
            self._problem(line, None, None, f"syntax error: {exc}")
            return

        consumed = [0 if owner is None else 1]

        def next_token() -> str | None:
            consumed[0] += 1
            token = tok.get()
            return token.value if token.is_identifier() else None

        try:
            name, ttl, rdtype = self._header(line, owner, next_token)
        except _SkipRecord:
            return
        except dns.exception.DNSException as exc:
            self._problem(line, owner, None, f"syntax error: {exc}")
            return
        try:
            rdata = dns.rdata.from_text(IN, rdtype, tok, self.origin, False, None)
        except Exception as exc:  # noqa: BLE001 - any refusal of input is a problem
            message = describe_rdata_error(rdtype, _echo(record, consumed[0]), exc)
            self._problem(line, name, rdtype, message)
            return
        self._add(line, name, ttl, rdtype, rdata)

    def _header(
        self, line: int, owner: str | None, next_token: Callable[[], str | None]
    ) -> tuple[dns.name.Name, int, T]:
        """The owner, TTL and type of a record; the data follows in next_token's source."""
        name = self._owner(line, owner)
        ttl: int | None = None
        seen_class = False
        token = next_token()
        for _ in range(2):
            if token is None:
                break
            if ttl is None and token[:1].isdigit():
                try:
                    ttl = dns.ttl.from_text(token)
                except dns.ttl.BadTTL:
                    self._problem(line, name, None, f"invalid TTL {quote(token)}")
                    raise _SkipRecord from None
                token = next_token()
            elif not seen_class and _is_class(token):
                try:
                    rdclass = dns.rdataclass.from_text(token)
                except ValueError:  # CLASS70000
                    rdclass = None
                if rdclass != IN:
                    self._problem(
                        line, name, None, f"class {token.upper()} is not supported, only IN"
                    )
                    raise _SkipRecord
                seen_class = True
                token = next_token()
            else:
                break
        if token is None:
            self._problem(line, name, None, "the record type is missing")
            raise _SkipRecord
        try:
            rdtype = parse_rdatatype(token)
        except ValueError as exc:
            self._problem(line, name, None, str(exc))
            raise _SkipRecord from None
        refusal = self._refusal(rdtype)
        if refusal is not None:
            self._problem(line, name, rdtype, refusal)
            raise _SkipRecord
        if ttl is not None:
            self.last_ttl = ttl
        else:
            ttl = self._implicit_ttl()
        if ttl is None and rdtype == T.SOA:
            ttl = -1  # the SOA's own minimum, known once its data is read
        if ttl is None:
            self._problem(line, name, rdtype, "no TTL: give one or add a $TTL line first")
            raise _SkipRecord
        return name, ttl, rdtype

    def _refusal(self, rdtype: T) -> str | None:
        if rdtype not in self._refusals:
            # The SOA is read apart from the RRsets: allow_soa is for the API.
            rules = dataclasses.replace(self.rules, allow_soa=True)
            self._refusals[rdtype] = type_refusal(rdtype, rules)
        return self._refusals[rdtype]

    def _owner(self, line: int, text: str | None) -> dns.name.Name:
        if text is None:
            if self.owner is None:
                if not self.owner_known:  # the refused owner was reported already
                    self._problem(line, None, None, "a blank owner needs a previous record")
                raise _SkipRecord
            return self.owner
        key = (text, self.origin.labels)
        cached = self._names.get(key)
        if cached is None:
            try:
                parsed = name_from_text(text, self.origin, strict=self.rules.strict_names)
                cached = owner_name(parsed, self.zone_origin, strict=self.rules.strict_names)
            except InvalidName as exc:
                cached = exc.reason
            self._names[key] = cached
        if isinstance(cached, str):
            self.owner, self.owner_known = None, True
            self._problem(line, text, None, cached)
            raise _SkipRecord
        self.owner, self.owner_known = cached, True
        return cached

    def _implicit_ttl(self) -> int | None:
        # $TTL wins; then the last stated TTL (RFC 1035 section 5.1); then the
        # SOA minimum of old files without $TTL (as BIND and dnspython do).
        if self.default_ttl is not None:
            return self.default_ttl
        if self.last_ttl is not None:
            return self.last_ttl
        return self.soa_ttl_default

    def _directive(self, line: int, word: str, args: list[str]) -> None:
        directive = word.upper()
        if directive == "$INCLUDE":
            self._problem(line, None, None, "$INCLUDE is not allowed")
        elif directive == "$GENERATE":
            self._problem(
                line, None, None,
                "$GENERATE is not supported: expand it first (e.g. named-checkzone -D)",
            )
        elif directive == "$ORIGIN":
            if len(args) != 1:
                self._problem(line, None, None, "$ORIGIN takes exactly one name")
                return
            try:
                self.origin = name_from_text(args[0], self.origin, strict=False)
            except InvalidName as exc:
                self._problem(line, None, None, f"invalid $ORIGIN: {exc.reason}")
        elif directive == "$TTL":
            if len(args) != 1:
                self._problem(line, None, None, "$TTL takes exactly one TTL")
                return
            try:
                self.default_ttl = dns.ttl.from_text(args[0])
            except dns.ttl.BadTTL:
                self._problem(line, None, None, f"invalid $TTL {quote(args[0])}")
        else:
            self._problem(line, None, None, f"unknown directive {quote(word)}")

    def _add(
        self, line: int, name: dns.name.Name, ttl: int, rdtype: T, rdata: dns.rdata.Rdata
    ) -> None:
        if rdtype == T.SOA:
            assert isinstance(rdata, dns.rdtypes.ANY.SOA.SOA)
            if ttl < 0:
                ttl = rdata.minimum
            if self.default_ttl is None and self.soa_ttl_default is None:
                self.soa_ttl_default = rdata.minimum
        key = (name.labels, rdtype)
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group(name, ttl, line)
        group.rdatas.append((line, rdata))

    def _problem(self, line: int | None, owner: dns.name.Name | str | None,
                 rdtype: T | None, message: str) -> None:
        shown = owner.to_text() if isinstance(owner, dns.name.Name) else owner
        type_text = dns.rdatatype.to_text(rdtype) if rdtype is not None else None
        self.problems.append(Problem(line, shown, type_text, message))

    # Result

    def result(self, require_soa: bool) -> ZoneContent:
        origin = self.zone_origin
        soa: dns.rdtypes.ANY.SOA.SOA | None = None
        soa_ttl: int | None = None
        rrsets: list[RRsetData] = []
        for (labels, rdtype), group in self.groups.items():
            if rdtype == T.SOA:
                if labels != origin.labels:
                    self._problem(
                        group.line, group.name, rdtype, "an SOA is only allowed at the zone apex"
                    )
                    continue
                soa, soa_ttl = self._soa(group)
                continue
            for message in ttl_reasons(group.ttl, self.rules):
                self._problem(group.line, group.name, rdtype, message)
            rrset, reasons = canonical_rrset(
                group.name, rdtype, group.ttl, group.rdatas, len(group.rdatas), self.rules,
                parsed=True,
            )
            for line, message in reasons:
                self._problem(line if line is not None else group.line, group.name, rdtype,
                              message)
            if rrset is not None and not ttl_reasons(group.ttl, self.rules):
                rrsets.append(rrset)
        if require_soa and soa is None:
            self._problem(None, origin, T.SOA, "the zone has no SOA record")
        zone_problems = check_zone(origin, rrsets)
        if zone_problems:
            first_line = {
                (g.name.to_text(), dns.rdatatype.to_text(t)): g.line
                for (_, t), g in self.groups.items()
            }
            for p in zone_problems:
                line = first_line.get((p.owner or "", p.rdtype or ""))
                self.problems.append(Problem(line, p.owner, p.rdtype, p.message))
        if self.problems:
            self.problems.sort(key=lambda p: p.line if p.line is not None else 1 << 62)
            raise InvalidZone(self.problems)
        rrsets.sort(key=_canonical_order)
        return ZoneContent(origin, soa, soa_ttl, tuple(rrsets))

    def _soa(self, group: _Group) -> tuple[dns.rdtypes.ANY.SOA.SOA | None, int | None]:
        distinct: dict[bytes, tuple[int, dns.rdata.Rdata]] = {}
        for line, rd in group.rdatas:
            distinct.setdefault(rd.to_digestable(), (line, rd))
        if len(distinct) > 1:
            lines = sorted(line for line, _ in distinct.values())
            self._problem(lines[1], group.name, T.SOA, "more than one SOA record")
            return None, None
        (_, soa), = distinct.values()
        assert isinstance(soa, dns.rdtypes.ANY.SOA.SOA)
        for message in ttl_reasons(group.ttl, self.rules):
            self._problem(group.line, group.name, T.SOA, message)
        return soa, group.ttl


def _depth(line: str) -> tuple[int, str | None]:
    """How much `line` opens parentheses, or why it cannot be read."""
    bare = _OPAQUE.sub("x", line)
    if '"' in bare:
        return 0, "a quoted string is not closed on its line"
    return bare.count("(") - bare.count(")"), None


def _is_class(token: str) -> bool:
    upper = token.upper()
    return upper in _CLASSES or _CLASS_NNN.fullmatch(upper) is not None


def _rest_values(tok: dns.tokenizer.Tokenizer) -> list[str]:
    values: list[str] = []
    while True:
        token = tok.get()
        if token.is_eol_or_eof():
            return values
        values.append(token.value)


def _echo(record: str, skip: int) -> str:
    """The data part of `record` for a message: its tokens after the first `skip`."""
    tok = dns.tokenizer.Tokenizer(record)
    values: list[str] = []
    try:
        while True:
            token = tok.get()
            if token.is_eol_or_eof():
                break
            values.append(f'"{token.value}"' if token.is_quoted_string() else token.value)
    except dns.exception.DNSException:
        return " ".join(record.split())
    return " ".join(values[skip:])
