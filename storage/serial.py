"""SOA serials: date-based YYYYMMDDnn, never going backwards."""

from __future__ import annotations

from datetime import date

MAX_SERIAL = 2**32 - 1


def next_serial(current: int, today: date) -> int:
    """The serial after `current`: today's first YYYYMMDD00, or current + 1.

    When more than 100 edits land in one day the counter runs into the next
    day's numbers; that keeps it monotonic, which is what secondaries need.
    """
    dated = int(today.strftime("%Y%m%d")) * 100
    serial = dated if current < dated else current + 1
    if serial > MAX_SERIAL:
        raise OverflowError(f"serial {current} cannot be increased")
    return serial
