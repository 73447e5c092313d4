"""TOTP (RFC 6238) with replay refusal.

A code is accepted for the current 30-second step or the one before or
after (clock drift), and only if its step is later than the last step
accepted for that user: a code seen once is never accepted again.
"""

from __future__ import annotations

from datetime import datetime

import pyotp

STEP_S = 30
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, login: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step `code` belongs to, within the drift window, or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int(now.timestamp()) // STEP_S
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            return step
    return None


def code_at(secret: str, now: datetime) -> str:
    """The code for `now` (tests and the enrolment check)."""
    return pyotp.TOTP(secret).at(now)
