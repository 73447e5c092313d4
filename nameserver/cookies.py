"""DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).

Server cookie = Version(1) | Reserved(3) | Timestamp(4) | Hash(8), where
Hash = SipHash-2-4(Client Cookie | Version | Reserved | Timestamp | Client-IP)
keyed by a 16-octet secret. The secret rotates: cookies made with the
previous secret stay valid until the next rotation, so a client's cookie is
honoured for at least one full rotation period. Only queries that carry a
COOKIE option pay for this (they bypass the response cache), and SipHash in
Python costs ~20 us, so the cookie last issued to each (address, client
cookie) is remembered: a client presenting it again, or coming back without
it, costs a dict lookup until it is due for renewal.
"""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

_MASK = 0xFFFFFFFFFFFFFFFF
VERSION = 1
LIFETIME_S = 3600  # RFC 9018 4.3: valid for an hour ...
REFRESH_S = 1800  # ... and replaced after half an hour
FUTURE_S = 300  # tolerated clock skew into the future
MEMO_ENTRIES = 100_000  # remembered issued cookies; the memo is dropped when full


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def siphash24(key: bytes, data: bytes) -> bytes:
    """SipHash-2-4 of `data` under a 16-octet key, 8 octets little-endian."""
    k0, k1 = struct.unpack("<QQ", key)
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573

    def rounds(v0: int, v1: int, v2: int, v3: int, n: int) -> tuple[int, int, int, int]:
        for _ in range(n):
            v0 = (v0 + v1) & _MASK
            v1 = _rotl(v1, 13) ^ v0
            v0 = _rotl(v0, 32)
            v2 = (v2 + v3) & _MASK
            v3 = _rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & _MASK
            v3 = _rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & _MASK
            v1 = _rotl(v1, 17) ^ v2
            v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    length = len(data)
    full = length - length % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i : i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
        v0 ^= m
    m = int.from_bytes(data[full:], "little") | ((length & 0xFF) << 56)
    v3 ^= m
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 2)
    v0 ^= m
    v2 ^= 0xFF
    v0, v1, v2, v3 = rounds(v0, v1, v2, v3, 4)
    return struct.pack("<Q", v0 ^ v1 ^ v2 ^ v3)


@dataclass(frozen=True, slots=True)
class CookieCheck:
    valid: bool  # the query carried a server cookie we made, still fresh
    reply: bytes  # the COOKIE option value to send back (client + server cookie)


class CookieJar:
    """Makes and checks server cookies; `rotate()` replaces the secret."""

    def __init__(self, secret: bytes | None = None, rotate_s: float = 3600.0) -> None:
        self._secret = secret or os.urandom(16)
        self._previous: bytes | None = None
        self._rotate_s = rotate_s
        self._rotated_at = time.monotonic()
        # (address, client cookie) -> (server cookie, its timestamp), current secret
        self._issued: dict[tuple[bytes, bytes], tuple[bytes, int]] = {}

    def rotate(self, secret: bytes | None = None) -> None:
        self._previous = self._secret
        self._secret = secret or os.urandom(16)
        self._rotated_at = time.monotonic()
        self._issued.clear()

    def _maybe_rotate(self) -> None:
        if time.monotonic() - self._rotated_at >= self._rotate_s:
            self.rotate()

    @staticmethod
    def _make(secret: bytes, client: bytes, ip: bytes, stamp: int) -> bytes:
        head = struct.pack("!B3xI", VERSION, stamp)
        return head + siphash24(secret, client + head + ip)

    def check(self, cookie: bytes, ip: bytes, now: int | None = None) -> CookieCheck:
        """`cookie` is the COOKIE option value; `ip` the packed client address."""
        self._maybe_rotate()
        now = int(time.time()) if now is None else now
        client, server = cookie[:8], cookie[8:]
        issued = self._issued.get((ip, client))
        if issued is not None and (now - issued[1]) & 0xFFFFFFFF < REFRESH_S:
            if server == issued[0]:
                return CookieCheck(True, cookie[:24])
            if not server:
                return CookieCheck(False, client + issued[0])
        valid = False
        stamp = 0
        if len(server) == 16 and server[0] == VERSION:
            stamp = int.from_bytes(server[4:8], "big")
            age = (now - stamp) & 0xFFFFFFFF  # serial arithmetic (RFC 1982)
            fresh = age <= LIFETIME_S or (0x100000000 - age) <= FUTURE_S
            if fresh:
                valid = any(
                    self._make(secret, client, ip, stamp) == server
                    for secret in (self._secret, self._previous)
                    if secret is not None
                )
        if valid and (now - stamp) & 0xFFFFFFFF < REFRESH_S:
            self._remember(ip, client, server, stamp)
            return CookieCheck(True, cookie[:24])
        made = self._make(self._secret, client, ip, now & 0xFFFFFFFF)
        self._remember(ip, client, made, now)
        return CookieCheck(valid, client + made)

    def _remember(self, ip: bytes, client: bytes, server: bytes, stamp: int) -> None:
        if len(self._issued) >= MEMO_ENTRIES:
            self._issued.clear()
        self._issued[(ip, client)] = (server, stamp)
