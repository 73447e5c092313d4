from datetime import date

import pytest

from storage.serial import next_serial

DAY = date(2026, 11, 28)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (0, 2026112800),  # new zone: today's first serial
        (1, 2026112800),  # an old small serial jumps to the date form
        (2026112700, 2026112800),  # yesterday's
        (2026112800, 2026112801),  # second edit today
        (2026112899, 2026112900),  # the 101st edit runs into tomorrow's numbers
        (2030010100, 2030010101),  # a serial ahead of the date never goes back
    ],
)
def test_next_serial(current: int, expected: int) -> None:
    assert next_serial(current, DAY) == expected


def test_serial_cannot_overflow() -> None:
    with pytest.raises(OverflowError):
        next_serial(2**32 - 1, DAY)
