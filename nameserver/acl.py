"""Who may transfer zones: client networks from the `allow_transfer` setting.

A transfer is allowed when the client's address is inside one of these
networks, or when the request carries a valid TSIG signature made with one
of the configured keys (checked in nameserver/xfr.py). An empty list allows
no address at all: transfers are closed by default.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AclError(ValueError):
    """A network in the transfer ACL is not valid CIDR notation."""


def parse_network(text: str) -> Network:
    """'192.0.2.0/24', '2001:db8::/32' or a bare address (a /32 or /128)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError as exc:
        raise AclError(f"invalid network in allow_transfer: {text!r}") from exc


def client_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address as the socket reports it; IPv4-mapped IPv6 is
    unmapped so '::ffff:192.0.2.1' matches '192.0.2.0/24'. None if unparsable."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class TransferAcl:
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TransferAcl:
        """Parse every network; raises AclError naming the first bad one."""
        return cls(tuple(parse_network(t) for t in texts if t.strip()))

    def allows(self, address: str) -> bool:
        client = client_address(address)
        if client is None:
            return False
        return any(client.version == net.version and client in net for net in self.networks)
