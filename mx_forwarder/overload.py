"""Backpressure: new mail is slowed, then refused with a 4xx, while the queue
is too deep or the disk that holds it is nearly full; what was accepted is
never at risk, since the check comes at MAIL, before anything is taken.

The queue depth is the number of deliveries waiting (queued or deferred,
what zonehost_mx_queue_depth shows), counted in the shared store every
`check_s` (so every MX host sharing the queue sees the same figure) plus
what this process has queued since the last count. From `tarpit_from` on,
the reply to MAIL is held back, longer as the depth nears `high` (up to
`tarpit_max_delay_s`), which slows each sending connection, like Postfix's
in_flow_delay. From `high` on, MAIL gets 451 4.3.2 until the depth is down
to `low` (hysteresis: no flapping at the mark). Less than `min_free_bytes`
free where the queue is written (SQLite file, spool folder) gets
452 4.3.1 until there is room again. And while a message accepted by DATA
has waited `max_write_wait_s` for its commit (a store that is locked,
failing over or saturated), MAIL gets 451 4.3.2 too, rather than more
senders piling up behind it and timing out before their 250.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from mx_forwarder import metrics

log = logging.getLogger(__name__)


class Pressure(enum.Enum):
    NONE = "none"
    OVERLOAD = "overload"  # queue over the high-water mark
    LOW_DISK = "low_disk"  # not enough free space for the queue
    SLOW_WRITES = "slow_writes"  # the queue write (the store) is not keeping up


REPLIES = {
    Pressure.OVERLOAD: "451 4.3.2 System busy, not accepting mail right now, try again later",
    Pressure.LOW_DISK: "452 4.3.1 Insufficient system storage, try again later",
    Pressure.SLOW_WRITES: "451 4.3.2 System busy, not accepting mail right now, try again later",
}


@dataclass(frozen=True, slots=True)
class OverloadSettings:
    high: int = 100_000  # 0: never refused for queue depth
    low: int = 80_000
    tarpit_from: int = 50_000  # 0: never slowed
    tarpit_max_delay_s: float = 1.0
    min_free_bytes: int = 100 * 1024 * 1024  # 0: free space not checked
    max_write_wait_s: float = 10.0  # 0: the queue write's progress not checked
    check_s: float = 1.0
    paths: tuple[str, ...] = ()  # folders holding the queue (free space checked)


@dataclass(frozen=True, slots=True)
class Verdict:
    pressure: Pressure
    delay_s: float = 0.0

    @property
    def reply(self) -> str | None:
        return REPLIES.get(self.pressure)


ACCEPT = Verdict(Pressure.NONE)


def free_bytes(path: str) -> int:
    """Bytes available to us on the file system holding `path`."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


class OverloadGuard:
    """Decides at MAIL time; a background task keeps its figures fresh."""

    def __init__(self, settings: OverloadSettings, count: Callable[[], Awaitable[int]],
                 free: Callable[[str], int] = free_bytes,
                 write_wait: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self._count = count
        self._free = free
        self._write_wait = write_wait if settings.max_write_wait_s > 0 else None
        self.counted = 0  # depth at the last count
        self.since = 0  # deliveries this process queued since then
        self.overloaded = False
        self.low_disk = False
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        s = self.settings
        return (s.high > 0 or s.tarpit_from > 0 or (s.min_free_bytes > 0 and bool(s.paths))
                or self._write_wait is not None)

    @property
    def depth(self) -> int:
        return self.counted + self.since

    def queued(self, deliveries: int) -> None:
        """This process has just queued `deliveries` more."""
        self.since += deliveries
        if self.settings.high > 0 and not self.overloaded and self.depth >= self.settings.high:
            self._set_overloaded(True)

    def check(self) -> Verdict:
        """What a new transaction (MAIL) gets now."""
        if self.low_disk:
            return Verdict(Pressure.LOW_DISK)
        if self.overloaded:
            return Verdict(Pressure.OVERLOAD)
        s = self.settings
        if self._write_wait is not None and self._write_wait() >= s.max_write_wait_s:
            return Verdict(Pressure.SLOW_WRITES)
        depth = self.depth
        if s.tarpit_from <= 0 or depth < s.tarpit_from or s.tarpit_max_delay_s <= 0:
            return ACCEPT
        top = s.high if s.high > s.tarpit_from else s.tarpit_from * 2
        share = min(1.0, (depth - s.tarpit_from) / (top - s.tarpit_from))
        return Verdict(Pressure.NONE, s.tarpit_max_delay_s * share)

    async def refresh(self) -> None:
        """Count the queue and look at the free space once."""
        before = self.since
        depth = await self._count()
        # what was queued while counting may be in the count and in `since`:
        # counted twice until the next round rather than not at all
        self.counted, self.since = depth, self.since - before
        s = self.settings
        if s.high > 0:
            if depth >= s.high and not self.overloaded:
                self._set_overloaded(True)
            elif depth <= s.low and self.overloaded:
                self._set_overloaded(False)
        elif self.overloaded:
            self._set_overloaded(False)
        low_disk = self._short_of_space(s.paths)
        if low_disk != self.low_disk:
            self.low_disk = low_disk
            metrics.LOW_DISK.set(int(low_disk))
            if low_disk:
                log.warning("less than %d bytes free for the queue: new mail gets 452",
                            s.min_free_bytes)
            else:
                log.warning("free space for the queue is back: accepting mail again")

    def _short_of_space(self, paths: Sequence[str]) -> bool:
        if self.settings.min_free_bytes <= 0:
            return False
        for path in paths:
            try:
                if self._free(path) < self.settings.min_free_bytes:
                    return True
            except OSError as exc:
                log.warning("cannot read free space of %s: %s", path, exc)
        return False

    def _set_overloaded(self, value: bool) -> None:
        self.overloaded = value
        metrics.OVERLOADED.set(int(value))
        if value:
            log.warning("queue depth %d over %d: new mail gets 451 until it is down to %d",
                        self.depth, self.settings.high, self.settings.low)
        else:
            log.warning("queue depth %d at or under %d: accepting mail again", self.depth,
                        self.settings.low)

    async def _run(self) -> None:
        failures = 0
        while True:  # the service counted once before listening
            await asyncio.sleep(self.settings.check_s)
            try:
                await self.refresh()
                failures = 0
            except Exception as exc:  # noqa: BLE001  (the store is down: DATA says so itself)
                failures += 1
                if failures == 1:
                    log.error("cannot count the queue: %s", exc)

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="mx-overload")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
