"""Value types shared by the parser, the answer engine and the renderer."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nameserver.rrwire import PreparedRRset


class Rcode(enum.IntEnum):
    NOERROR = 0
    FORMERR = 1
    SERVFAIL = 2
    NXDOMAIN = 3
    NOTIMP = 4
    REFUSED = 5
    YXDOMAIN = 6
    NOTAUTH = 9
    BADVERS = 16  # extended: needs EDNS
    BADCOOKIE = 23  # extended: needs EDNS


class Opcode(enum.IntEnum):
    QUERY = 0
    NOTIFY = 4


class Outcome(enum.Enum):
    ANSWER = "answer"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    REFERRAL = "referral"
    REFUSED = "refused"
    SERVFAIL = "servfail"
    YXDOMAIN = "yxdomain"  # DNAME substitution overflowed a name
    FORMERR = "formerr"
    NOTIMP = "notimp"
    BADVERS = "badvers"
    BADCOOKIE = "badcookie"
    NOTAUTH = "notauth"


# Header flag bits
QR, AA, TC, RD = 0x8000, 0x0400, 0x0200, 0x0100
COOKIE_OPTION = 10


@dataclass(frozen=True, slots=True)
class Edns:
    version: int
    payload: int  # requested UDP payload as sent
    do: bool
    options: tuple[tuple[int, bytes], ...]
    cookie: bytes | None  # the COOKIE option value (client cookie, maybe + server cookie)


@dataclass(frozen=True, slots=True)
class Query:
    id: int
    flags: int  # the 16 header flag bits as sent
    opcode: int
    qname: bytes  # lower-case wire
    question: bytes  # qname (case as sent) + QTYPE + QCLASS, echoed verbatim
    qtype: int
    qclass: int
    edns: Edns | None
    tsig_offset: int | None  # where a TSIG RR starts in the message, for xfr
    message: bytes


# One RRset placed in a section: (owner, lower-case wire, prepared RRset).
Placed = tuple[bytes, PreparedRRset]


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: Outcome
    rcode: Rcode
    aa: bool
    answer: tuple[Placed, ...] = ()
    authority: tuple[Placed, ...] = ()
    additional: tuple[Placed, ...] = ()
    zone: bytes | None = None  # origin the query was answered from (for statistics)
    # OPT options to add to the reply (cookie, extended error); EDNS replies only.
    options: tuple[tuple[int, bytes], ...] = ()
    echo_question: bool = True  # False: QDCOUNT 0, as NSD answers unknown classes


EDE_OPTION = 15  # RFC 8914 Extended DNS Errors


def ede(info_code: int, text: str = "") -> tuple[int, bytes]:
    return EDE_OPTION, info_code.to_bytes(2, "big") + text.encode()


EDE_PROHIBITED = ede(18)
EDE_NOT_AUTHORITATIVE = ede(20)
EDE_NOT_SUPPORTED = ede(21)
