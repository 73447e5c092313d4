"""RRsets: one owner, one type, one TTL, a canonical set of rdata.

Every rdata is parsed by dnspython; this module adds the rules dnspython
leaves to the application (which types, TTL bounds, counts, sizes) and the
canonical form every writer stores: rdata deduplicated and sorted in RFC 4034
section 6.3 order, names absolute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from storage.dnsdata.errors import InvalidName, InvalidRRset, quote
from storage.dnsdata.names import IDNA_CODEC, owner_name
from storage.dnsdata.rules import IMPORT_RULES, SINGLETON_TYPES, DnsRules, type_refusal

T = dns.rdatatype.RdataType
IN = dns.rdataclass.IN
RRsetKey = tuple[dns.name.Name, dns.rdatatype.RdataType]

MAX_RDATA_OCTETS = 65535  # RDLENGTH is 16 bits
# The largest RRset a server can still send in one TCP message: 65535 minus
# the header (12), the longest question (255 + 4) and an OPT record (11);
# each record then costs a 2-octet compressed owner, 10 octets of fixed
# fields and its rdata.
MAX_RRSET_OCTETS = 65535 - 12 - 259 - 11
_PER_RECORD_OCTETS = 12
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tab allowed, line breaks not

# Fields that name a host with addresses (RFC 1123 host names), and the root
# values that have a meaning there (null MX, "no service" SRV, SVCB "self").
_HOST_FIELDS: dict[dns.rdatatype.RdataType, str] = {
    T.NS: "target",
    T.MX: "exchange",
    T.KX: "exchange",
    T.RT: "exchange",
    T.AFSDB: "exchange",
    T.SRV: "target",
    T.SVCB: "target",
    T.HTTPS: "target",
}
_ROOT_ALLOWED = frozenset({T.MX, T.SRV, T.SVCB, T.HTTPS})
_ALIAS_FIELDS: dict[dns.rdatatype.RdataType, str] = {
    T.CNAME: "target",
    T.DNAME: "target",
    T.PTR: "target",
}
# Types whose wire form cannot reach MAX_RDATA_OCTETS (a few names and fixed fields).
_BOUNDED_TYPES = frozenset({
    T.A, T.AAAA, T.NS, T.CNAME, T.DNAME, T.PTR, T.MX, T.KX, T.RT, T.AFSDB, T.SRV, T.SOA, T.LOC,
})
_HOST_LABEL = re.compile(rb"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_ALIAS_LABEL = re.compile(rb"[a-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class RRsetData:
    """A validated RRset; build it with parse_rrset() or rrset_from_rdatas().

    `name` is absolute and canonical; `rdatas` hold absolute names, are
    deduplicated and sorted in canonical order (RFC 4034 section 6.3), so two
    RRsets with the same data compare equal.
    """

    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    ttl: int
    rdatas: tuple[dns.rdata.Rdata, ...]

    @property
    def key(self) -> RRsetKey:
        return (self.name, self.rdtype)

    def rdata_texts(self) -> tuple[str, ...]:
        """Presentation form of each rdata, names absolute."""
        return tuple(rdata_to_text(rd) for rd in self.rdatas)

    def rdata_wires(self) -> tuple[bytes, ...]:
        """Uncompressed wire form of each rdata (names keep their case)."""
        return tuple(wire(rd) for rd in self.rdatas)


def rdata_to_text(rdata: dns.rdata.Rdata, origin: dns.name.Name | None = None) -> str:
    """Presentation form of `rdata`, names relative to `origin` when given.

    Empty data of a type whose text form cannot be empty (DHCID, OPENPGPKEY,
    ... from '\\# 0') is written in RFC 3597 form, so the text parses back.
    """
    text = str(rdata.to_text(origin=origin))
    return text if text else str(rdata.to_generic().to_text())


def parse_rdatatype(rdtype: str | int) -> dns.rdatatype.RdataType:
    """'AAAA', 'aaaa', 'TYPE28' or 28 -> AAAA; ValueError when it is none of these."""
    if isinstance(rdtype, bool):
        raise ValueError(f"unknown record type {rdtype!r}")  # noqa: TRY004 - bad input, not a bug
    if isinstance(rdtype, int):
        if not 0 <= rdtype <= 65535:
            raise ValueError(f"record type {rdtype} is out of range 0-65535")
        return T.make(rdtype)
    if not isinstance(rdtype, str) or not rdtype.isascii() or not rdtype.strip():
        raise ValueError(f"unknown record type {quote(str(rdtype))}")
    try:
        return T.from_text(rdtype.strip().upper())
    except (dns.exception.DNSException, ValueError):
        raise ValueError(f"unknown record type {quote(rdtype)}") from None


def parse_rrset(
    origin: dns.name.Name,
    owner: str | dns.name.Name,
    rdtype: str | int,
    ttl: int,
    rdatas: Iterable[str],
    rules: DnsRules = IMPORT_RULES,
) -> RRsetData:
    """Parse an RRset given as text, as the API receives it.

    `owner` is relative to `origin` unless it ends with a dot ('@' or '' for
    the apex). Each rdata is presentation format, parsed by dnspython with
    `origin` (relative names allowed); RFC 3597 generic syntax ('\\# 4
    0a000001') works for every type. Raises InvalidRRset with every reason.
    """
    if isinstance(rdatas, str):
        raise TypeError("rdatas must be an iterable of strings, not one string")
    reasons: list[str] = []
    owner_text = owner if isinstance(owner, str) else owner.to_text()
    name: dns.name.Name | None = None
    try:
        name = owner_name(owner, origin, strict=rules.strict_names)
        owner_text = name.to_text()
    except InvalidName as exc:
        reasons.append(exc.reason)
    try:
        rtype = parse_rdatatype(rdtype)
    except ValueError as exc:
        raise InvalidRRset(owner_text, str(rdtype), [*reasons, str(exc)]) from None
    texts = list(rdatas)
    numbered: list[tuple[int, dns.rdata.Rdata]] = []
    refusal = type_refusal(rtype, rules)
    if refusal is not None:
        reasons.append(refusal)  # and skip the data: its errors would be noise
    reasons.extend(ttl_reasons(ttl, rules))
    if refusal is None:
        numbered, parse_reasons = _parse_texts(origin, rtype, texts, rules)
        reasons.extend(parse_reasons)
    result, more = canonical_rrset(name, rtype, ttl, numbered, len(texts), rules, parsed=True)
    reasons.extend(_numbered(more))
    if reasons or result is None:
        raise InvalidRRset(owner_text, dns.rdatatype.to_text(rtype), reasons)
    return result


def rrset_from_rdatas(
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType | int,
    ttl: int,
    rdatas: Iterable[dns.rdata.Rdata],
    rules: DnsRules = IMPORT_RULES,
) -> RRsetData:
    """An RRsetData from rdata a caller already holds (from wire, from a zone).

    `name` must be absolute; it is canonicalised (lower case). Rdata must be
    class IN, of `rdtype`, with absolute names. The same rules as
    parse_rrset() apply, except that `name` is not checked against a zone:
    check_zone() does that. Raises InvalidRRset with every reason.
    """
    rtype = T.make(rdtype)
    owner_text = name.to_text()
    reasons: list[str] = []
    if not name.is_absolute():
        reasons.append("the owner name must be absolute")
    elif rules.strict_names:
        try:
            owner_name(name, dns.name.root, strict=True)
        except InvalidName as exc:
            reasons.append(exc.reason)
    refusal = type_refusal(rtype, rules)
    if refusal is not None:
        reasons.append(refusal)
    reasons.extend(ttl_reasons(ttl, rules))
    items = list(rdatas)
    numbered: list[tuple[int, dns.rdata.Rdata]] = []
    for i, rd in enumerate(items[: rules.max_rdatas_per_rrset], 1):
        if not isinstance(rd, dns.rdata.Rdata):
            reasons.append(f"record {i}: not a dnspython Rdata")
        elif rd.rdclass != IN or rd.rdtype != rtype:
            shown = f"{dns.rdataclass.to_text(rd.rdclass)} {dns.rdatatype.to_text(rd.rdtype)}"
            reasons.append(f"record {i}: is {shown} data, not IN {dns.rdatatype.to_text(rtype)}")
        else:
            numbered.append((i, rd))
    owner = name.canonicalize() if name.is_absolute() else None
    result, more = canonical_rrset(owner, rtype, ttl, numbered, len(items), rules)
    reasons.extend(_numbered(more))
    if reasons or result is None:
        raise InvalidRRset(owner_text, dns.rdatatype.to_text(rtype), reasons)
    return result


def check_rdata(
    owner: dns.name.Name | None, rdtype: dns.rdatatype.RdataType, rdata: dns.rdata.Rdata,
    rules: DnsRules, *, parsed: bool = False,
) -> list[str]:
    """Reasons to refuse one rdata beyond what dnspython checks.

    `parsed`: the rdata came from our own text parsing, so its names are
    absolute, and types of bounded size need no wire-size check (a speed-up
    for imports, where most records are such).
    """
    return _check_rdata(owner, rdtype, rdata, rules, parsed)[1]


def _check_rdata(
    owner: dns.name.Name | None, rdtype: dns.rdatatype.RdataType, rdata: dns.rdata.Rdata,
    rules: DnsRules, parsed: bool,
) -> tuple[int, list[str]]:
    """check_rdata(), and the wire size (0 when it was not needed)."""
    reasons: list[str] = []
    if parsed and rdtype in _BOUNDED_TYPES:
        size = 0
    else:
        try:
            size = len(wire(rdata))
        except dns.name.NeedAbsoluteNameOrOrigin:
            return 0, ["contains a relative name"]
    if size > MAX_RDATA_OCTETS:
        reasons.append(f"is {size} octets long in wire form (at most {MAX_RDATA_OCTETS})")
    if rules.strict_names:
        reasons.extend(_strict_target_reasons(owner, rdtype, rdata))
    return size, reasons


def wire(rdata: dns.rdata.Rdata) -> bytes:
    """The uncompressed wire form of `rdata` (names as they are)."""
    data = rdata.to_wire()
    assert data is not None  # no file given: dnspython returns the bytes
    return data


def describe_rdata_error(rdtype: dns.rdatatype.RdataType, text: str, exc: Exception) -> str:
    """A user-facing message for dnspython refusing `text` as `rdtype` data."""
    if rdtype == T.A:
        return f"invalid IPv4 address {quote(text.strip())}"
    if rdtype == T.AAAA:
        return f"invalid IPv6 address {quote(text.strip())}"
    return f"invalid {dns.rdatatype.to_text(rdtype)} data {quote(text.strip())}: {_detail(exc)}"


def _detail(exc: Exception) -> str:
    # dnspython raises these as such, or wrapped in a SyntaxError: match both.
    text = str(exc)
    if isinstance(exc, dns.name.LabelTooLong) or text == "A DNS label is > 63 octets long.":
        return "a name has a label longer than 63 octets"
    if isinstance(exc, dns.name.EmptyLabel) or text == "A DNS label is empty.":
        return "a name has an empty label ('..')"
    if isinstance(exc, dns.name.NameTooLong) or text == "A DNS name is > 255 octets long.":
        return "a name is longer than 255 octets"
    if isinstance(exc, dns.exception.UnexpectedEnd):
        return "incomplete (a field is missing or a quote is not closed)"
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    if text == "Text input is malformed":
        return "malformed"
    if text.startswith("expected EOL or EOF"):
        return "unexpected text after the last field"
    if text == "expecting an identifier":
        return "a field is missing"
    if text == "string too long":
        return "a string is longer than 255 octets; split it into several quoted strings"
    return text[0].lower() + text[1:] if text[1:2].islower() else text


def ttl_reasons(ttl: int, rules: DnsRules) -> list[str]:
    """Why `ttl` is refused by `rules` (empty when it is fine)."""
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        return [f"TTL must be an integer, got {quote(str(ttl))}"]
    if not rules.min_ttl_s <= ttl <= rules.max_ttl_s:
        return [f"TTL {ttl} is outside {rules.min_ttl_s}-{rules.max_ttl_s} seconds"]
    return []


def _numbered(reasons: list[tuple[int | None, str]]) -> list[str]:
    return [f"record {i}: {m}" if i is not None else m for i, m in reasons]


def _parse_texts(
    origin: dns.name.Name, rdtype: dns.rdatatype.RdataType, texts: Sequence[object],
    rules: DnsRules,
) -> tuple[list[tuple[int, dns.rdata.Rdata]], list[str]]:
    numbered: list[tuple[int, dns.rdata.Rdata]] = []
    reasons: list[str] = []
    for i, text in enumerate(texts[: rules.max_rdatas_per_rrset], 1):
        if not isinstance(text, str):
            reasons.append(f"record {i}: must be text")
            continue
        if _CONTROL.search(text):
            reasons.append(
                f"record {i}: line breaks and control characters are not allowed "
                "(write them as \\DDD inside quotes)"
            )
            continue
        try:
            rd = dns.rdata.from_text(IN, rdtype, text, origin, False, None, IDNA_CODEC)
        except Exception as exc:  # noqa: BLE001 - any refusal of user input is a reason
            reasons.append(f"record {i}: {describe_rdata_error(rdtype, text, exc)}")
            continue
        numbered.append((i, rd))
    return numbered, reasons


def canonical_rrset(
    name: dns.name.Name | None,
    rdtype: dns.rdatatype.RdataType,
    ttl: int,
    numbered: list[tuple[int, dns.rdata.Rdata]],
    count: int,
    rules: DnsRules,
    *,
    parsed: bool = False,
) -> tuple[RRsetData | None, list[tuple[int | None, str]]]:
    """The canonical RRset of parsed rdata, each numbered (record number or
    line), or None and the reasons, each with the number of its rdata or None.

    `count` is how many rdata the caller was given (some may have failed to
    parse); `name`, None when it was refused, is canonical. The type itself is
    not judged here (type_refusal()); `parsed` as for check_rdata().
    """
    reasons: list[tuple[int | None, str]] = []
    if count == 0:
        reasons.append((None, "an RRset needs at least one record"))
    elif count > rules.max_rdatas_per_rrset:
        reasons.append((None, f"too many records: {count} (at most {rules.max_rdatas_per_rrset})"))
    wildcard = name is not None and name.labels[:1] == (b"*",)
    if rules.strict_names and wildcard and rdtype in (T.NS, T.DNAME):
        type_text = dns.rdatatype.to_text(rdtype)
        message = f"{type_text} records at a wildcard name are not allowed (RFC 4592 section 4)"
        reasons.append((None, message))
    if len(numbered) == 1:  # the common case: nothing to deduplicate or sort
        (i, rd), = numbered
        size, problems = _check_rdata(name, rdtype, rd, rules, parsed)
        reasons.extend((i, p) for p in problems)
        if not problems and _PER_RECORD_OCTETS + size > MAX_RRSET_OCTETS:
            reasons.append((None, _too_large(_PER_RECORD_OCTETS + size)))
        if reasons or name is None:
            return None, reasons
        return RRsetData(name, rdtype, ttl, (rd,)), reasons
    by_digest: dict[bytes, dns.rdata.Rdata] = {}
    size = 0
    for i, rd in numbered:
        problems = _check_rdata(name, rdtype, rd, rules, parsed)[1]
        if problems:
            reasons.extend((i, p) for p in problems)
            continue
        digest = rd.to_digestable()
        if digest not in by_digest:  # the first one wins: it keeps the caller's case
            by_digest[digest] = rd
            size += _PER_RECORD_OCTETS + len(digest)  # same length as the wire form
    if len(by_digest) > 1 and rdtype in SINGLETON_TYPES:
        type_text = dns.rdatatype.to_text(rdtype)
        message = f"a {type_text} RRset holds exactly one record, got {len(by_digest)}"
        reasons.append((None, message))
    if size > MAX_RRSET_OCTETS:
        reasons.append((None, _too_large(size)))
    if reasons or name is None:
        return None, reasons
    rdatas = tuple(by_digest[d] for d in sorted(by_digest))
    return RRsetData(name, rdtype, ttl, rdatas), reasons


def _too_large(size: int) -> str:
    return (
        f"the RRset is {size} octets long, too large for one DNS message "
        f"(at most {MAX_RRSET_OCTETS})"
    )


def _strict_target_reasons(
    owner: dns.name.Name | None, rdtype: dns.rdatatype.RdataType, rdata: dns.rdata.Rdata
) -> list[str]:
    reasons: list[str] = []
    host_field = _HOST_FIELDS.get(rdtype)
    alias_field = _ALIAS_FIELDS.get(rdtype)
    field = host_field or alias_field
    if field is None:
        return reasons
    target = getattr(rdata, field)
    if not isinstance(target, dns.name.Name):
        return reasons
    if target == dns.name.root:
        if rdtype not in _ROOT_ALLOWED:
            reasons.append("the target cannot be the root ('.')")
        return reasons
    pattern = _HOST_LABEL if host_field else _ALIAS_LABEL
    for label in target.canonicalize().labels[:-1]:
        if not pattern.fullmatch(label):
            what = "a host name (letters, digits, inner hyphens)" if host_field else (
                "made of letters, digits, hyphens and underscores"
            )
            shown = quote(label.decode("latin-1"))
            reasons.append(f"target {target.to_text()} is not {what}: label {shown}")
            break
    if owner is not None and rdtype == T.CNAME and target == owner:
        reasons.append("the CNAME points to itself")
    if owner is not None and rdtype == T.DNAME and target.is_subdomain(owner):
        reasons.append("the DNAME target is inside its own subtree, which loops")
    return reasons
