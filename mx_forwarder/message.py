"""Reading and extending a message's header without touching its body.

The forwarder only ever prepends header fields (Received,
Authentication-Results, Delivered-To): the bytes it received, every header
a DKIM signature covers and the body, go on unchanged.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable

CRLF = b"\r\n"


def header_block(data: bytes) -> bytes:
    """The header section (without the blank line), or b"" when there is none."""
    if data.startswith(CRLF):
        return b""
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def header_fields(data: bytes) -> list[tuple[str, bytes]]:
    """(lower-case name, unfolded value) of each header field, in order."""
    fields: list[tuple[str, bytes]] = []
    for line in header_block(data).split(CRLF):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and fields:
            last_name, last_value = fields[-1]
            fields[-1] = (last_name, last_value + b" " + line.strip())
            continue
        raw_name, colon, value = line.partition(b":")
        if colon:
            fields.append((raw_name.strip().lower().decode("ascii", "replace"), value.strip()))
    return fields


def hop_count(fields: Iterable[tuple[str, bytes]]) -> int:
    return sum(1 for name, _ in fields if name == "received")


def delivered_to(fields: Iterable[tuple[str, bytes]]) -> set[str]:
    return {
        v.decode("utf-8", "replace").strip().strip("<>").lower()
        for name, v in fields if name == "delivered-to"
    }


def header_from_domain(fields: Iterable[tuple[str, bytes]]) -> str | None:
    """The domain of the (first) From: address, lower case."""
    for name, value in fields:
        if name == "from":
            _, address = email.utils.parseaddr(value.decode("utf-8", "replace"))
            _, at, domain = address.rpartition("@")
            return domain.lower().rstrip(".") if at and domain else None
    return None


def received_header(
    *, helo: str | None, client_ip: str | None, hostname: str, protocol: str,
    recipient: str | None, when: float | None = None,
) -> bytes:
    """A Received field (RFC 5321 4.4), one recipient named only when there is one."""
    helo_text = _clean(helo or "unknown")
    ip = _clean(client_ip or "unknown")
    date = email.utils.formatdate(when, localtime=False, usegmt=True)
    for_part = f"\r\n\tfor <{_clean(recipient)}>" if recipient else ""
    line = (f"Received: from {helo_text} ([{ip}])\r\n\tby {_clean(hostname)} (zonehost) "
            f"with {protocol}{for_part}; {date}\r\n")
    return line.encode("utf-8", "replace")


def _clean(text: str) -> str:
    """No CR, LF or other control characters from a client into our headers."""
    return "".join(c for c in text if c.isprintable() and c not in "()<>;")[:255]
