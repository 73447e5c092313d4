"""The daily job inside a long-running process (`zonehost serve`).

`run_every_day` runs the job once at start (catching up whatever a stop
missed), then each day at `run_at` (UTC), until `stop` is set. The job is
idempotent, so several processes doing this, or a restart, cost nothing
but a few queries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta

from billing.config import BillingConfig
from billing.job import JobReport, run_daily
from storage.db import Database

log = logging.getLogger(__name__)


def seconds_until(now: datetime, run_at: time) -> float:
    """From `now` to the next `run_at` (UTC), strictly in the future."""
    target = datetime.combine(now.date(), run_at, tzinfo=UTC)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


async def run_every_day(
    config: BillingConfig, db: Database, stop: asyncio.Event, *, run_at: time = time(0, 10),
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_report: Callable[[JobReport], None] | None = None,
) -> None:
    while not stop.is_set():
        try:
            report = await run_daily(config, db, clock().date())
            if on_report is not None:
                on_report(report)
        except Exception:  # the store may be down for a while: try again tomorrow
            log.exception("billing daily job failed")
        try:
            await asyncio.wait_for(stop.wait(), seconds_until(clock(), run_at))
        except TimeoutError:
            pass
