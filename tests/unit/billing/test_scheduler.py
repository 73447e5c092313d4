"""When the daily job runs next."""

from __future__ import annotations

from datetime import UTC, datetime, time

from billing.scheduler import seconds_until


def test_seconds_until_the_next_run() -> None:
    at = time(0, 10)
    assert seconds_until(datetime(2027, 3, 1, 0, 0, tzinfo=UTC), at) == 600
    assert seconds_until(datetime(2027, 3, 1, 0, 10, tzinfo=UTC), at) == 86400
    assert seconds_until(datetime(2027, 3, 1, 23, 10, tzinfo=UTC), at) == 3600
