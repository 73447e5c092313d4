"""Transfer codes encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key is derived from the configured `billing_secret_key`; rotating that
key makes stored codes unreadable, and they are then asked from the
registry again.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from billing.errors import BillingError


class SecretUnreadable(BillingError):
    """The stored secret cannot be decrypted with the current key."""

    code = "secret_unreadable"
    status = 409


def _fernet(secret_key: str) -> Fernet:
    digest = hashlib.sha256(b"zonehost-billing-transfer-code\0" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret_key: str, text: str) -> str:
    return _fernet(secret_key).encrypt(text.encode()).decode("ascii")


def unseal(secret_key: str, token: str) -> str:
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable() from exc
