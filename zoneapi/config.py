"""The zone API's configuration: one frozen value, built by zonehost.config."""

from __future__ import annotations

import base64
import builtins
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from billing.config import SmtpRelay


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
    # Processes of `zonehost zoneapi` sharing `listen` (SO_REUSEPORT) and the rate limits.
    workers: int = 1
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
    # The platform's MX hosts, in preference order: mail aliases need the zone's MX on them.
    mail_mx_hosts: tuple[str, ...] = ()
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


class _Settings(Protocol):
    """What zonehost.config.Settings offers (zoneapi never imports zonehost)."""

    def str(self, key: builtins.str, default: builtins.str) -> builtins.str: ...
    def optional_str(self, key: builtins.str) -> builtins.str | None: ...
    def int(self, key: builtins.str, default: builtins.int) -> builtins.int: ...
    def float(self, key: builtins.str, default: builtins.float) -> builtins.float: ...
    def bool(self, key: builtins.str, default: builtins.bool) -> builtins.bool: ...
    def list(self, key: builtins.str, default: builtins.list[builtins.str]
             ) -> builtins.list[builtins.str]: ...


def _hostport(text: str, error: type[Exception]) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise error(f"invalid address {text!r}: expected HOST:PORT")
    return host, int(port)


def _at_least_one(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return value


def from_settings(s: _Settings, error: type[Exception] = ValueError) -> ZoneApiConfig:
    """Read `zoneapi_*` settings (`[zoneapi]` in the file, ZONEHOST_ZONEAPI_* in the env)."""
    key_text = s.optional_str("zoneapi_secret_key")
    key_file = Path(s.str("zoneapi_secret_key_file", "var/zoneapi.key"))
    secret_key = key_text.encode() if key_text else load_or_create_key(key_file)
    smtp_host = s.optional_str("zoneapi_smtp_relay")
    smtp = None
    if smtp_host:
        host, port = _hostport(smtp_host if ":" in smtp_host else f"{smtp_host}:25", error)
        smtp = SmtpRelay(host, port, s.optional_str("zoneapi_smtp_username"),
                         s.optional_str("zoneapi_smtp_password"),
                         s.bool("zoneapi_smtp_starttls", False), timeout_s=10.0)
    sms_url = s.optional_str("zoneapi_sms_gateway_url")
    sms = SmsGatewayConfig(sms_url, s.optional_str("zoneapi_sms_gateway_username"),
                           s.optional_str("zoneapi_sms_gateway_password"),
                           s.str("zoneapi_sms_sender", "zonehost")) if sms_url else None
    d = ZoneApiConfig(secret_key=b"")
    try:
        return ZoneApiConfig(
            secret_key=secret_key,
            listen=_hostport(s.str("zoneapi_listen", s.str("http_listen", "127.0.0.1:8053")),
                             error),
            workers=_at_least_one(s.int("zoneapi_workers", d.workers), "zoneapi_workers"),
            public_url=s.str("zoneapi_public_url", d.public_url),
            max_body_bytes=s.int("zoneapi_max_body_bytes", d.max_body_bytes),
            max_import_bytes=s.int("zoneapi_max_import_bytes", d.max_import_bytes),
            max_rrsets_per_request=s.int("zoneapi_max_rrsets_per_request",
                                         d.max_rrsets_per_request),
            max_records_per_zone=s.int("zoneapi_max_records_per_zone", d.max_records_per_zone),
            rate_per_address=RateLimit(s.float("zoneapi_rate_per_address", 50.0),
                                       s.int("zoneapi_rate_burst_per_address", 200)),
            rate_per_token=RateLimit(s.float("zoneapi_rate_per_token", 50.0),
                                     s.int("zoneapi_rate_burst_per_token", 200)),
            cookie_secure=s.bool("zoneapi_cookie_secure", True),
            session_idle_s=s.int("zoneapi_session_idle_s", d.session_idle_s),
            session_absolute_s=s.int("zoneapi_session_absolute_s", d.session_absolute_s),
            step_up_s=s.int("zoneapi_step_up_s", d.step_up_s),
            sms_code_ttl_s=s.int("zoneapi_sms_code_ttl_s", d.sms_code_ttl_s),
            sms_per_hour=s.int("zoneapi_sms_per_hour", d.sms_per_hour),
            login_max_failures=s.int("zoneapi_login_max_failures", d.login_max_failures),
            address_max_failures=s.int("zoneapi_address_max_failures", d.address_max_failures),
            lockout_s=s.int("zoneapi_lockout_s", d.lockout_s),
            mail_from=s.str("zoneapi_mail_from", d.mail_from),
            smtp=smtp, sms=sms,
            trusted_proxies=tuple(s.list("zoneapi_trusted_proxies", [])),
            signup_enabled=s.bool("zoneapi_signup_enabled", True),
            mail_mx_hosts=tuple(s.list("zoneapi_mail_mx_hosts", [])),
        )
    except ValueError as exc:
        raise error(str(exc)) from exc
