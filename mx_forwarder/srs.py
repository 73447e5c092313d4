"""Sender Rewriting Scheme (SRS0/SRS1), pure functions of the keys and the day.

A forwarded message goes out with the envelope sender rewritten into our own
domain, so SPF passes at the destination; a bounce to that address is
reversed to the original sender. Following libsrs2 (and Postfix's
postsrsd):

    SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
    SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@srs-domain

HHHH is the first four base64 characters of HMAC-SHA1 over the rest
(compared without regard to case, since some MTAs fold the local part), TT
the day number mod 1024 in base32. The first key signs; every key verifies,
so keys rotate by putting the new one first and keeping the old one a while.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from mx_forwarder.errors import SrsError

_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_PERIOD = 1024
_HASH_LEN = 4


def today() -> int:
    return int(time.time() // 86400)


def _timestamp(day: int) -> str:
    t = day % _PERIOD
    return _B32[t >> 5] + _B32[t & 31]


def _day_of(stamp: str) -> int:
    stamp = stamp.upper()
    if len(stamp) != 2 or any(c not in _B32 for c in stamp):
        raise SrsError(f"bad SRS timestamp {stamp!r}")
    return (_B32.index(stamp[0]) << 5) | _B32.index(stamp[1])


@dataclass(frozen=True, slots=True)
class Srs:
    domain: str  # our SRS domain, lower case, no trailing dot
    keys: tuple[bytes, ...]  # first signs, all verify
    max_age_days: int = 21

    def __post_init__(self) -> None:
        if not self.keys or not all(self.keys):
            raise SrsError("SRS needs at least one non-empty key")

    def _hash(self, key: bytes, *parts: str) -> str:
        mac = hmac.new(key, "".join(parts).lower().encode(), hashlib.sha1).digest()
        return base64.b64encode(mac).decode()[:_HASH_LEN]

    def _check_hash(self, given: str, *parts: str) -> None:
        for key in self.keys:
            if hmac.compare_digest(self._hash(key, *parts).lower(), given.lower()):
                return
        raise SrsError("SRS hash does not match")

    def is_ours(self, address: str) -> bool:
        local, _, domain = address.rpartition("@")
        return domain.lower() == self.domain and local[:5].upper() in ("SRS0=", "SRS1=")

    def forward(self, sender: str, day: int | None = None) -> str:
        """The envelope sender to use when forwarding mail from `sender`."""
        if not sender:
            return ""  # the null sender stays null
        local, at, domain = sender.rpartition("@")
        if not at or not local or not domain:
            raise SrsError(f"cannot rewrite {sender!r}")
        if domain.lower() == self.domain and local[:5].upper() in ("SRS0=", "SRS1="):
            return sender  # already ours: rewriting again would only nest
        key = self.keys[0]
        upper = local[:5].upper()
        if upper == "SRS0=":
            # SRS1=HHHH=first-forwarder==HHHH=TT=domain=local (the SRS0 opaque part kept)
            opaque = local[4:]
            return f"SRS1={self._hash(key, domain, opaque)}={domain}={opaque}@{self.domain}"
        if upper == "SRS1=":
            first, sep, opaque = local[5:].partition("==")
            hash_end = first.find("=")
            if not sep or hash_end < 0:
                raise SrsError(f"bad SRS1 address {sender!r}")
            first_host = first[hash_end + 1:]
            opaque = "=" + opaque
            return (f"SRS1={self._hash(key, first_host, opaque)}={first_host}={opaque}"
                    f"@{self.domain}")
        stamp = _timestamp(today() if day is None else day)
        return f"SRS0={self._hash(key, stamp, domain, local)}={stamp}={domain}={local}@{self.domain}"

    def reverse(self, address: str, day: int | None = None) -> str:
        """The address a bounce to our SRS `address` goes back to; SrsError if forged."""
        local, at, domain = address.rpartition("@")
        if not at or domain.lower() != self.domain:
            raise SrsError("not an address of our SRS domain")
        upper = local[:5].upper()
        if upper == "SRS0=":
            parts = local[5:].split("=", 3)
            if len(parts) != 4 or not all(parts):
                raise SrsError("bad SRS0 address")
            given, stamp, orig_domain, orig_local = parts
            self._check_hash(given, stamp, orig_domain, orig_local)
            now = today() if day is None else day
            age = (now - _day_of(stamp)) % _PERIOD
            if age > self.max_age_days:
                raise SrsError("SRS address too old")
            return f"{orig_local}@{orig_domain}"
        if upper == "SRS1=":
            head, sep, rest = local[5:].partition("==")
            parts = head.split("=", 1)
            if not sep or len(parts) != 2 or not all(parts) or not rest:
                raise SrsError("bad SRS1 address")
            given, first_host = parts
            opaque = "=" + rest
            self._check_hash(given, first_host, opaque)
            return f"SRS0{opaque}@{first_host}"
        raise SrsError("not an SRS address")
