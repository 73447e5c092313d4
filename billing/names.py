"""Domain names at billing's edges: canonical text with a trailing dot inside,
without it when shown."""

from __future__ import annotations

from billing.errors import InvalidRequest
from storage.dnsdata import DnsDataError, zone_origin


def canonical(text: str) -> str:
    """'Example.FR' -> 'example.fr.' (IDNs as A-labels); InvalidRequest when bad."""
    try:
        return zone_origin(text).to_text()
    except DnsDataError as exc:
        raise InvalidRequest([f"invalid domain name {text!r}: {exc}"]) from exc


def extension_of(name: str) -> str:
    """The registry suffix: everything after the first label ('acme.co.uk.' -> 'co.uk')."""
    return name.rstrip(".").split(".", 1)[1]


def shown(name: str) -> str:
    return name.rstrip(".")
