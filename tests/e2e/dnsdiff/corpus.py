"""Read a differential corpus: a folder of ``<origin>.zone`` files and a ``queries.txt``.

The format is defined in ``shared/conformance/README.md``; every flag there has a field
here, and an unknown flag is an error rather than a silently different query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dns.opcode
import dns.rdataclass
import dns.rdatatype

DEFAULT_PAYLOAD = 1232
NSID_OPTION = 3

_AMBIGUOUS = re.compile(r"^ambiguous(?:\[(?P<aspects>[^\]]*)\])?\s*:?\s*(?P<reason>.*)$")


class CorpusError(ValueError):
    """A corpus file does not follow the format."""


@dataclass(frozen=True, slots=True)
class EdnsOption:
    code: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """Aspects on which trusted servers legitimately disagree; ``None`` means all of them."""

    aspects: frozenset[str] | None
    reason: str

    def covers(self, aspect: str) -> bool:
        # Whether a parseable answer came at all is never ambiguous.
        if aspect == "response":
            return False
        if self.aspects is None:
            return True
        return any(aspect == a or aspect.startswith(a + ".") for a in self.aspects)


@dataclass(frozen=True, slots=True)
class Query:
    source: str  # "file:line", for reports
    qname: str  # exactly as written: the case is part of the test
    qtype: dns.rdatatype.RdataType
    rdclass: dns.rdataclass.RdataClass = dns.rdataclass.IN
    tcp: bool = False
    edns: bool = True
    payload: int = DEFAULT_PAYLOAD
    do: bool = False
    edns_version: int = 0
    options: tuple[EdnsOption, ...] = ()
    rd: bool = False
    cd: bool = False
    ad: bool = False
    opcode: dns.opcode.Opcode = dns.opcode.QUERY
    axfr: bool = False
    soft: bool = False
    ambiguous: Ambiguity | None = None
    text: str = ""  # the line as written, without its comment

    @property
    def udp_limit(self) -> int:
        """The largest UDP reply this query allows (RFC 6891 6.2.5: below 512 means 512)."""
        return max(self.payload, 512) if self.edns else 512


@dataclass(frozen=True, slots=True)
class ZoneFile:
    origin: str  # absolute, with the trailing dot
    path: Path


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    path: Path
    zones: tuple[ZoneFile, ...]
    queries: tuple[Query, ...]


def load_corpus(path: Path) -> Corpus:
    zones = tuple(ZoneFile(origin=_origin_of(p), path=p) for p in sorted(path.glob("*.zone")))
    if not zones:
        raise CorpusError(f"{path}: no <origin>.zone files")
    queries_path = path / "queries.txt"
    queries = parse_queries(queries_path.read_text(encoding="utf-8"), str(queries_path))
    return Corpus(name=path.name, path=path, zones=zones, queries=queries)


def _origin_of(path: Path) -> str:
    stem = path.name[: -len(".zone")]
    return "." if stem in ("", ".", "root") else stem.rstrip(".") + "."


def parse_queries(text: str, source: str = "queries.txt") -> tuple[Query, ...]:
    queries: list[Query] = []
    pending: Ambiguity | None = None
    errors: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body, _, comment = raw.partition("#")
        # "## section" lines have their comment start at the second '#'.
        comment = comment.lstrip("#").strip()
        ambiguity = _parse_ambiguity(comment)
        body = body.strip()
        if not body:
            if ambiguity is not None:
                pending = ambiguity
            continue
        try:
            query = _parse_line(body, f"{source}:{number}", ambiguity or pending)
        except (CorpusError, ValueError) as exc:
            errors.append(f"{source}:{number}: {exc}")
        else:
            queries.append(query)
        pending = None
    if errors:
        raise CorpusError("\n".join(errors))
    return tuple(queries)


def _parse_ambiguity(comment: str) -> Ambiguity | None:
    match = _AMBIGUOUS.match(comment)
    if match is None:
        return None
    aspects = match.group("aspects")
    parsed = (
        None if aspects is None else frozenset(a.strip() for a in aspects.split(",") if a.strip())
    )
    return Ambiguity(aspects=parsed, reason=match.group("reason").strip())


def _parse_line(body: str, source: str, ambiguity: Ambiguity | None) -> Query:
    words = body.split()
    if len(words) < 2:
        raise CorpusError("expected: qname qtype [flags...]")
    qname, qtype_text, *flags = words
    qtype = dns.rdatatype.RdataType.make(qtype_text)
    fields: dict[str, object] = {}
    options: list[EdnsOption] = []
    for flag in flags:
        key, eq, value = flag.partition("=")
        key = key.lower()
        if not eq and key in ("tcp", "do", "rd", "cd", "ad", "axfr", "soft"):
            fields[key] = True
        elif not eq and key == "noedns":
            fields["edns"] = False
        elif not eq and key == "nsid":
            options.append(EdnsOption(NSID_OPTION, b""))
        elif key == "bufsize":
            fields["payload"] = _int(value, 0, 65535, flag)
        elif key == "ednsver":
            fields["edns_version"] = _int(value, 0, 255, flag)
        elif key == "ednsopt":
            options.append(_parse_option(value, flag))
        elif key == "class":
            fields["rdclass"] = dns.rdataclass.RdataClass.make(value)
        elif key == "opcode":
            fields["opcode"] = dns.opcode.Opcode.make(
                _int(value, 0, 15, flag) if value.isdigit() else value.upper()
            )
        else:
            raise CorpusError(f"unknown flag {flag!r}")
    if qtype == dns.rdatatype.AXFR:
        fields["axfr"] = True
    if fields.get("axfr"):
        fields["tcp"] = True
    return Query(
        source=source,
        qname=qname,
        qtype=qtype,
        options=tuple(options),
        ambiguous=ambiguity,
        text=body,
        **fields,  # type: ignore[arg-type]
    )


def _int(value: str, low: int, high: int, flag: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CorpusError(f"{flag!r}: not a number") from None
    if not low <= number <= high:
        raise CorpusError(f"{flag!r}: out of range {low}..{high}")
    return number


def _parse_option(value: str, flag: str) -> EdnsOption:
    if value.lower() == "nsid":
        return EdnsOption(NSID_OPTION, b"")
    code, colon, data = value.partition(":")
    try:
        return EdnsOption(_int(code, 0, 65535, flag), bytes.fromhex(data) if colon else b"")
    except ValueError:
        raise CorpusError(f"{flag!r}: expected CODE:HEX") from None
