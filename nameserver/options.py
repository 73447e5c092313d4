"""Nameserver settings, handed down by zonehost/config.py."""

from __future__ import annotations

from dataclasses import dataclass

from nameserver.rrl import RrlOptions


@dataclass(frozen=True, slots=True)
class NameserverOptions:
    udp_payload: int = 1232  # our EDNS(0) UDP payload (RFC 6891, DNS flag day 2020)
    cache_entries: int = 100_000  # prepared replies kept per transport; 0 disables
    tcp_idle_timeout_s: float = 10.0
    tcp_max_connections: int = 1000
    tcp_max_per_client: int = 64  # per source address
    tcp_max_buffer_bytes: int = 256 * 1024  # stop reading a client that does not read
    reuse_port: bool = False  # SO_REUSEPORT, for several worker processes
    rrl: RrlOptions | None = None  # response rate limiting, off by default
    cookies: bool = True  # RFC 7873 server cookies
    require_cookie: bool = False  # BADCOOKIE over UDP without a valid server cookie
    version: str | None = None  # CH TXT version.bind / version.server; None: REFUSED
    identity: str | None = None  # CH TXT id.server / hostname.bind; None: REFUSED
