"""The backpressure guard's decisions: tarpit ramp, high and low marks, disk."""

from __future__ import annotations

import pytest

from mx_forwarder.overload import OverloadGuard, OverloadSettings, Pressure


class Queue:
    def __init__(self) -> None:
        self.depth = 0

    async def count(self) -> int:
        return self.depth


async def test_tarpit_ramp_then_refusal_with_hysteresis() -> None:
    queue = Queue()
    guard = OverloadGuard(OverloadSettings(high=100, low=50, tarpit_from=60,
                                           tarpit_max_delay_s=2.0, min_free_bytes=0), queue.count)
    for depth, pressure, delay in [(0, Pressure.NONE, 0.0), (60, Pressure.NONE, 0.0),
                                   (80, Pressure.NONE, 1.0), (99, Pressure.NONE, 1.95),
                                   (100, Pressure.OVERLOAD, 0.0), (70, Pressure.OVERLOAD, 0.0),
                                   (51, Pressure.OVERLOAD, 0.0), (50, Pressure.NONE, 0.0)]:
        queue.depth = depth
        await guard.refresh()
        verdict = guard.check()
        assert verdict.pressure == pressure and verdict.delay_s == pytest.approx(delay), depth


async def test_own_queued_mail_counts_before_the_next_count() -> None:
    queue = Queue()
    guard = OverloadGuard(OverloadSettings(high=3, low=1, tarpit_from=0), queue.count)
    await guard.refresh()
    guard.queued(2)
    assert guard.check().reply is None
    guard.queued(1)
    reply = guard.check().reply
    assert reply is not None and reply.startswith("451 4.3.2")


async def test_low_disk() -> None:
    queue = Queue()
    free = {"/q": 10}
    guard = OverloadGuard(OverloadSettings(high=0, tarpit_from=0, min_free_bytes=100,
                                           paths=("/q",)), queue.count, free=free.__getitem__)
    assert guard.enabled
    await guard.refresh()
    reply = guard.check().reply
    assert reply is not None and reply.startswith("452 4.3.1")
    free["/q"] = 1000
    await guard.refresh()
    assert guard.check().reply is None


def test_everything_off() -> None:
    guard = OverloadGuard(OverloadSettings(high=0, tarpit_from=0, min_free_bytes=0,
                                           paths=("/q",)), Queue().count)
    assert not guard.enabled


async def test_slow_queue_writes() -> None:
    wait = [0.0]
    guard = OverloadGuard(OverloadSettings(high=0, tarpit_from=0, min_free_bytes=0,
                                           max_write_wait_s=2.0), Queue().count,
                          write_wait=lambda: wait[0])
    assert guard.enabled and guard.check().reply is None
    wait[0] = 2.5
    assert guard.check().pressure is Pressure.SLOW_WRITES
    wait[0] = 0.0
    assert guard.check().reply is None
