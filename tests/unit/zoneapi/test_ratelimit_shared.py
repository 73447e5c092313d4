"""Token buckets: one algorithm, in a dict and in a shared-memory table."""

from __future__ import annotations

import os

import pytest

from zoneapi.config import RateLimit
from zoneapi.ratelimit import PROBE_WINDOW, Limiter, RateLimiter, SharedRateLimiter


def _limiters(limit: RateLimit) -> list[Limiter]:
    return [RateLimiter(limit), SharedRateLimiter(limit, slots=1024)]


@pytest.mark.parametrize("kind", [0, 1], ids=["dict", "shared"])
def test_burst_then_refill_at_the_rate(kind: int) -> None:
    limiter = _limiters(RateLimit(per_s=1.0, burst=2))[kind]
    assert [limiter.take("a", 0.0) for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("a", 0.0) == pytest.approx(1.0)
    assert limiter.take("b", 0.0) == 0.0  # another key, another bucket
    assert limiter.take("a", 0.5) == pytest.approx(0.5)
    assert limiter.take("a", 1.5) == 0.0  # 1.5 tokens refilled, one taken
    # A reading older than the bucket's (another worker's clock read later) adds nothing.
    assert limiter.take("a", 1.0) == pytest.approx(0.5)
    # Refilling stops at the burst.
    assert [limiter.take("a", 100.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert limiter.take("a", 100.0) > 0


def test_full_window_evicts_the_least_recently_updated_bucket() -> None:
    # As many slots as the probe window: every key lands in the same window.
    limiter = SharedRateLimiter(RateLimit(per_s=0.001, burst=1), slots=PROBE_WINDOW)
    assert limiter.take("a", 0.0) == 0.0
    assert limiter.take("a", 0.0) > 0  # "a" is empty
    others = [f"k{i}" for i in range(1, PROBE_WINDOW)]
    for t, key in enumerate(others, start=1):
        assert limiter.take(key, float(t)) == 0.0
    assert limiter.used_slots() == PROBE_WINDOW
    assert limiter.take("a", 16.0) > 0  # still limited, and now recently updated
    assert limiter.take("new", 17.0) == 0.0  # evicts k1, the oldest
    assert limiter.used_slots() == PROBE_WINDOW
    assert limiter.take("a", 18.0) > 0  # "a" kept its (empty) bucket
    assert limiter.take("k3", 18.0) > 0  # k3 too: it took its token and is still there
    assert limiter.take("k1", 18.0) == 0.0  # k1 was forgotten: a fresh bucket


def test_table_size_is_a_power_of_two() -> None:
    with pytest.raises(ValueError):
        SharedRateLimiter(RateLimit(1.0, 1), slots=1000)


def test_forked_processes_take_from_one_bucket() -> None:
    """Two processes hammer one key at once: together they get the burst, not twice it."""
    burst, each = 3000, 4000
    limiter = SharedRateLimiter(RateLimit(per_s=1e-9, burst=burst))
    pipes, pids = [], []
    go_read, go_write = os.pipe()  # closed once both exist: they start together
    for _ in range(2):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                os.close(read_fd)
                os.close(go_write)
                os.read(go_read, 1)
                allowed = sum(1 for _ in range(each) if limiter.take("addr:192.0.2.1") == 0)
                os.write(write_fd, str(allowed).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        pipes.append(read_fd)
        pids.append(pid)
    os.close(go_write)
    os.close(go_read)
    counts = []
    for read_fd, pid in zip(pipes, pids, strict=True):
        with os.fdopen(read_fd, "rb") as pipe:
            counts.append(int(pipe.read() or b"-1"))
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert sum(counts) == burst, counts  # separate buckets: 2 * burst
    assert limiter.take("addr:192.0.2.1") > 0  # and this process sees it empty
