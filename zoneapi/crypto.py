"""Random secrets, their digests, and encryption of the TOTP secret.

Session ids, API tokens, recovery codes and reset links are 160+ bits of
randomness, so a plain SHA-256 digest stored in an indexed column is enough
(no salt or slow hash is needed to resist guessing) and lets a request find
its credential with one index lookup. The TOTP secret must be read back,
so it is encrypted with Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`)
under the configured key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random

from cryptography.fernet import Fernet, InvalidToken

TOKEN_PREFIX = "zh_"


def new_token() -> str:
    """An API token: 'zh_' and 40 URL-safe characters (240 bits)."""
    return TOKEN_PREFIX + _random.token_urlsafe(30)


def new_session_id() -> str:
    return _random.token_urlsafe(32)


def new_csrf_token() -> str:
    return _random.token_urlsafe(24)


def new_numeric_code(digits: int = 6) -> str:
    return "".join(_random.choice("0123456789") for _ in range(digits))


def new_recovery_code() -> str:
    """Ten characters in two groups of five, unambiguous letters and digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    raw = "".join(_random.choice(alphabet) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class SecretBox:
    """Encrypts small secrets (TOTP seeds) for storage."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str | None:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None
