"""argon2id password hashes, computed off the event loop.

Hashing costs tens of milliseconds of CPU by design, so it runs in a
thread; it happens only at login, sign-up and password changes, never on
ordinary API requests (those use sessions or tokens).
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=1, type=Type.ID
        )
        # Verified when a login does not exist, so both cases take as long.
        self._dummy = self._hasher.hash("not a password of anyone")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        return await asyncio.to_thread(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            return bool(self._hasher.verify(stored or self._dummy, password)) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(stored))
        except InvalidHashError:
            return True


def password_problem(password: str, login: str, min_chars: int) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < min_chars:
        return f"a password needs at least {min_chars} characters"
    if len(password) > 1000:
        return "a password has at most 1000 characters"
    if password.lower() == login.lower():
        return "the password must differ from the login"
    if len(set(password)) < 4:
        return "the password is too repetitive"
    return None
