"""The zone API's configuration: one frozen value, built by zonehost.config."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SmtpRelay:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    """An HTTP SMS gateway: POST JSON {"to", "text", "sender"} with basic auth."""

    url: str
    username: str | None = None
    password: str | None = None
    sender: str = "zonehost"
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A token bucket: `per_s` requests per second sustained, bursts of `burst`."""

    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class ZoneApiConfig:
    # Key for encrypting TOTP secrets at rest (Fernet, urlsafe base64 of 32 bytes).
    secret_key: bytes
    listen: tuple[str, int] = ("127.0.0.1", 8053)
    public_url: str = "http://127.0.0.1:8053"  # base of links sent by e-mail
    # Limits
    max_body_bytes: int = 1024 * 1024
    max_import_bytes: int = 16 * 1024 * 1024
    max_rrsets_per_request: int = 5000
    max_records_per_zone: int = 50000
    max_page_size: int = 500
    rate_per_address: RateLimit = RateLimit(per_s=50.0, burst=200)
    rate_per_token: RateLimit = RateLimit(per_s=50.0, burst=200)
    # Sessions
    cookie_name: str = "zonehost_session"
    cookie_secure: bool = True
    session_idle_s: int = 30 * 60
    session_absolute_s: int = 12 * 3600
    # Second factors and step-up
    step_up_s: int = 5 * 60
    sms_code_ttl_s: int = 5 * 60
    sms_per_hour: int = 5
    code_max_attempts: int = 5
    totp_issuer: str = "zonehost"
    recovery_codes: int = 10
    # Login throttling
    login_window_s: int = 15 * 60
    login_max_failures: int = 5  # per login, then locked for lockout_s
    address_max_failures: int = 30  # per source address
    lockout_s: int = 15 * 60
    password_reset_ttl_s: int = 30 * 60
    min_password_chars: int = 10
    # Delivery (None: the development outbox table)
    mail_from: str = "zonehost <noreply@localhost>"
    smtp: SmtpRelay | None = None
    sms: SmsGatewayConfig | None = None
    # Proxies whose X-Forwarded-For is believed (CIDRs); empty: the peer address.
    trusted_proxies: tuple[str, ...] = ()
    signup_enabled: bool = True
    # argon2id cost (RFC 9106 second recommendation by default).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024


def new_secret_key() -> bytes:
    return base64.urlsafe_b64encode(os.urandom(32))


def load_or_create_key(path: Path) -> bytes:
    """The key in `path`, created (mode 0600) on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_secret_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key
