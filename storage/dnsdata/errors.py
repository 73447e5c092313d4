"""Errors of the DNS data rules.

Validation collects every reason and raises once, so a caller (the API, the
import command) can show the whole list to the user in one answer.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_ECHO = 80  # characters of user input repeated back in a message


def quote(text: str) -> str:
    """`text` quoted for a message: single quotes, control characters escaped, shortened."""
    text = text[: _MAX_ECHO * 2]  # no work on huge input
    if not text.isprintable():
        text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(text) > _MAX_ECHO:
        text = text[: _MAX_ECHO - 3] + "..."
    return f"'{text}'"


class DnsDataError(Exception):
    """DNS data was refused."""


class InvalidName(DnsDataError):
    """A domain name was refused; `reason` says why."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid name {quote(text)}: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem of a zone: where (line, owner, type) and what."""

    line: int | None
    owner: str | None
    rdtype: str | None
    message: str

    def __str__(self) -> str:
        parts = [f"line {self.line}"] if self.line is not None else []
        subject = " ".join(p for p in (self.owner, self.rdtype) if p)
        if subject:
            parts.append(subject)
        parts.append(self.message)
        return ": ".join(parts)


class InvalidRRset(DnsDataError):
    """An RRset was refused; `reasons` lists every reason."""

    def __init__(self, owner: str, rdtype: str, reasons: list[str]) -> None:
        super().__init__(f"invalid RRset {owner} {rdtype}: " + "; ".join(reasons))
        self.owner = owner
        self.rdtype = rdtype
        self.reasons = reasons


class InvalidZone(DnsDataError):
    """A zone (file) was refused; `problems` lists every problem, one per line in str()."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
