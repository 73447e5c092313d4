"""Response rate limiting, as Knot DNS and BIND do it.

Responses are counted per (client network, response class, name) in
one-second windows: the network is the source /24 (IPv4) or /56 (IPv6);
the name is the query name for positive answers and the zone for negative
answers, referrals and errors (so random-subdomain floods share a bucket).
Past `rate_per_s` in a window a response is dropped, except every `slip`-th,
which is sent as an empty truncated reply so a real client behind a spoofed
flood retries over TCP. `slip=0` never slips, `slip=1` always does. Queries
over TCP, and UDP queries with a valid server cookie, are never limited.
"""

from __future__ import annotations

import enum
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass


class Action(enum.Enum):
    SEND = "send"
    DROP = "drop"
    SLIP = "slip"


@dataclass(frozen=True, slots=True)
class RrlOptions:
    rate_per_s: int = 20
    slip: int = 2
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    max_buckets: int = 100_000


def network_of(ip: str, options: RrlOptions) -> bytes:
    """The client network a source address is accounted to."""
    if ":" in ip:
        packed = socket.inet_pton(socket.AF_INET6, ip.split("%", 1)[0])
        bits = options.ipv6_prefix
    else:
        packed = socket.inet_aton(ip)
        bits = options.ipv4_prefix
    whole, rest = divmod(bits, 8)
    net = packed[:whole]
    if rest:
        net += bytes([packed[whole] & (0xFF << (8 - rest)) & 0xFF])
    return net


class RateLimiter:
    def __init__(self, options: RrlOptions, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = options
        self._clock = clock
        self._window = -1
        self._counts: dict[tuple[bytes, str, bytes], int] = {}
        self._slips = 0

    def decide(self, ip: str, kind: str, name: bytes) -> Action:
        now = int(self._clock())
        if now != self._window:
            self._window = now
            self._counts = {}
        counts = self._counts
        key = (network_of(ip, self.options), kind, name)
        seen = counts.get(key, 0) + 1
        if seen <= self.options.rate_per_s:
            if len(counts) < self.options.max_buckets or key in counts:
                counts[key] = seen
            return Action.SEND
        counts[key] = seen
        slip = self.options.slip
        if slip:
            self._slips += 1
            if self._slips % slip == 0:
                return Action.SLIP
        return Action.DROP
