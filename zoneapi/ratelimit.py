"""Token buckets in memory, per key (a source address, a token).

Limits are per process; behind several API processes each enforces its
own share, which is what a load balancer spreading requests expects.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from zoneapi.config import RateLimit

MAX_KEYS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, limit: RateLimit) -> None:
        self._limit = limit
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """0 if allowed, else the seconds to wait before the next request."""
        now = time.monotonic() if now is None else now
        limit = self._limit
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(float(limit.burst), now)
        else:
            bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.at) * limit.per_s)
            bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / limit.per_s if limit.per_s > 0 else math.inf

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (they hold no information)."""
        full_after = self._limit.burst / self._limit.per_s if self._limit.per_s > 0 else math.inf
        for key in [k for k, b in self._buckets.items() if now - b.at >= full_after]:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:
            self._buckets.clear()
