"""Nameserver settings, handed down by zonehost/config.py."""

from __future__ import annotations

from dataclasses import dataclass

from nameserver.rrl import RrlOptions


@dataclass(frozen=True, slots=True)
class NameserverOptions:
    udp_payload: int = 1232  # our EDNS(0) UDP payload (RFC 6891, DNS flag day 2020)
    # Prepared replies kept per transport (~330 bytes each); 0 disables. The hot
    # set of a real server is far smaller; unique queries only cost memory here.
    cache_entries: int = 20_000
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
