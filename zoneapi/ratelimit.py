"""Token buckets per key (a source address, a token).

One bucket algorithm (`take_token`), two stores of buckets:

- `RateLimiter`: a dict in this process's memory (one API process, tests);
- `SharedRateLimiter`: a fixed-size hash table in an anonymous shared
  mmap, created before the API forks its workers (`zonehost zoneapi
  --workers N`), so that every worker takes from the same buckets and the
  limits hold for the service as a whole, not per process.

Times are `time.monotonic()`, which is the system-wide CLOCK_MONOTONIC:
the workers' readings compare.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import multiprocessing
import os
import struct
import time
from dataclasses import dataclass
from typing import Protocol

from zoneapi.config import RateLimit

MAX_KEYS = 100_000


class Limiter(Protocol):
    """What the middlewares ask of a limiter."""

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed (a token is taken), else the seconds to wait."""
        ...


def take_token(tokens: float | None, at: float, now: float,
               limit: RateLimit) -> tuple[float, float, float]:
    """A request at `now` on a bucket holding `tokens` at time `at` (None: a
    new bucket, full): the bucket's tokens and time afterwards, and the
    seconds to wait (0: allowed, one token taken)."""
    if tokens is None:
        tokens, at = float(limit.burst), now
    else:
        # Another process may have stored a reading taken a moment after ours.
        tokens = min(float(limit.burst), tokens + max(0.0, now - at) * limit.per_s)
        at = max(at, now)
    if tokens >= 1.0:
        return tokens - 1.0, at, 0.0
    return tokens, at, (1.0 - tokens) / limit.per_s if limit.per_s > 0 else math.inf


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Buckets in a dict of this process."""

    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds to wait before the next request."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            tokens, at, wait_s = take_token(None, now, now, self._limit)
            self._buckets[key] = _Bucket(tokens, at)
        else:
            bucket.tokens, bucket.at, wait_s = take_token(bucket.tokens, bucket.at, now,
                                                          self._limit)
        return wait_s

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (they hold no information)."""
        full_after = self._limit.burst / self._limit.per_s if self._limit.per_s > 0 else math.inf
        for key in [k for k, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:
            self._buckets.clear()


# A slot: the key's 64-bit hash (0: empty), tokens, time of the last update.
_SLOT = struct.Struct("=Qdd")
PROBE_WINDOW = 16


class SharedRateLimiter:
    """Buckets in a hash table in shared memory, for processes forked after
    it was made (they inherit the mapping and the lock).

    Open addressing: a key's bucket is in the PROBE_WINDOW slots from its
    hash. When they are all taken by other keys, the least recently updated
    of them is evicted (typically one that has long refilled, and so holds
    no information). Keys are hashed with a random per-table salt, so a
    client cannot aim its keys at another client's slots; two keys with the
    same 64-bit hash would share a bucket, which is vanishingly rare.
    """

    def __init__(self, limit: RateLimit, slots: int = 1 << 17) -> None:
        if slots < PROBE_WINDOW or slots & (slots - 1):
            raise ValueError("slots must be a power of two, at least PROBE_WINDOW")
        self._limit = limit
        self._mask = slots - 1
        self._salt = os.urandom(16)
        # Anonymous and MAP_SHARED: one memory for this process and its forks.
        self._table = mmap.mmap(-1, slots * _SLOT.size)
        self._lock = multiprocessing.get_context("fork").Lock()

    @property
    def slots(self) -> int:
        return self._mask + 1

    def _hash(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=8, key=self._salt).digest()
        return int.from_bytes(digest, "little") or 1

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds to wait before the next request."""
        hashed = self._hash(key)
        table, unpack, mask, size = self._table, _SLOT.unpack_from, self._mask, _SLOT.size
        with self._lock:
            if now is None:
                now = time.monotonic()
            start = hashed & mask
            victim, victim_at = -1, math.inf
            for i in range(PROBE_WINDOW):
                offset = ((start + i) & mask) * size
                slot_hash, tokens, at = unpack(table, offset)
                if slot_hash == hashed:
                    tokens, at, wait_s = take_token(tokens, at, now, self._limit)
                    _SLOT.pack_into(table, offset, hashed, tokens, at)
                    return wait_s
                if slot_hash == 0:
                    # Slots are never emptied: the key is not further on either.
                    victim = offset
                    break
                if at < victim_at:
                    victim, victim_at = offset, at
            tokens, at, wait_s = take_token(None, now, now, self._limit)
            _SLOT.pack_into(table, victim, hashed, tokens, at)
            return wait_s

    def used_slots(self) -> int:
        """Slots holding a bucket (for tests and curiosity: a full scan)."""
        with self._lock:
            return sum(1 for i in range(self.slots)
                       if _SLOT.unpack_from(self._table, i * _SLOT.size)[0])
