"""Configuration: one TOML file, overridden setting by setting by the
environment (`ZONEHOST_<SETTING>`).

A TOML section flattens into its settings' names: `[nameserver] workers = 2`
is the setting `nameserver_workers`, overridden by
`ZONEHOST_NAMESERVER_WORKERS`. Lists are TOML arrays in the file and
comma-separated in the environment. Nothing below this package reads
`os.environ`: each service gets a frozen config value built here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nameserver.feed import FeedOptions
from nameserver.options import NameserverOptions
from nameserver.rrl import RrlOptions
from storage.db import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from billing.config import BillingConfig

ENV_PREFIX = "ZONEHOST_"


class ConfigError(Exception):
    """The configuration file or a setting is invalid."""


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}".lower().replace("-", "_")
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


class Settings:
    """Raw settings from the file and the environment, read with types."""

    def __init__(self, file_values: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self._file = _flatten(file_values)
        self._env = {
            k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
        }

    @classmethod
    def load(cls, path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        path = path or env.get(f"{ENV_PREFIX}CONFIG")
        values: dict[str, Any] = {}
        if path:
            try:
                with open(path, "rb") as f:
                    values = tomllib.load(f)
            except OSError as exc:
                raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"invalid configuration file {path}: {exc}") from exc
        return cls(values, env)

    def _raw(self, key: str) -> Any:
        if key in self._env:
            return self._env[key]
        return self._file.get(key)

    def has(self, key: str) -> bool:
        return key in self._env or key in self._file

    def str(self, key: str, default: str) -> str:
        value = self._raw(key)
        return default if value is None else str(value)

    def optional_str(self, key: str) -> str | None:
        value = self._raw(key)
        return None if value in (None, "") else str(value)

    def int(self, key: str, default: int) -> int:
        value = self._raw(key)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {key}: expected an integer, got {value!r}") from exc

    def float(self, key: str, default: float) -> float:
        value = self._raw(key)
        if value is None:
            return default
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {key}: expected a number, got {value!r}") from exc

    def bool(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting {key}: expected true or false, got {value!r}")

    def list(self, key: str, default: list[str]) -> list[str]:
        value = self._raw(key)
        if value is None:
            return list(default)
        if isinstance(value, list):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]

    @property
    def database_url(self) -> str:
        return self.str("database_url", DEFAULT_DATABASE_URL)


def parse_hostport(text: str, default_port: int) -> tuple[str, int]:
    """'127.0.0.1:53', '[::1]:53', '::1' or 'host' into (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ConfigError(f"invalid address {text!r}: no host")
    try:
        number = int(port) if port else default_port
    except ValueError as exc:
        raise ConfigError(f"invalid address {text!r}: bad port") from exc
    if not 0 <= number <= 65535:
        raise ConfigError(f"invalid address {text!r}: port out of range")
    return host, number


def billing_config(settings: Settings) -> BillingConfig:
    """The billing service's config (`[billing]` settings, see billing/config.py)."""
    from billing.config import BillingConfig, BillingConfigError

    try:
        return BillingConfig.from_settings(settings)
    except BillingConfigError as exc:
        raise ConfigError(str(exc)) from exc


def nameserver_options(settings: Settings) -> NameserverOptions:
    """`[nameserver]` settings (ZONEHOST_NAMESERVER_*)."""
    rate = settings.int("nameserver_rrl_rate", 0)
    return NameserverOptions(
        udp_payload=settings.int("nameserver_udp_payload", 1232),
        cache_entries=settings.int("nameserver_cache_entries", 100_000),
        tcp_idle_timeout_s=settings.float("nameserver_tcp_idle_timeout", 10.0),
        tcp_max_connections=settings.int("nameserver_tcp_max_connections", 1000),
        tcp_max_per_client=settings.int("nameserver_tcp_max_per_client", 64),
        reuse_port=settings.int("nameserver_workers", 1) > 1,
        rrl=RrlOptions(rate_per_s=rate, slip=settings.int("nameserver_rrl_slip", 2))
        if rate > 0
        else None,
        cookies=settings.bool("nameserver_cookies", True),
        version=settings.optional_str("nameserver_version"),
        identity=settings.optional_str("nameserver_identity"),
    )


def feed_options(settings: Settings) -> FeedOptions:
    defaults = FeedOptions()
    return FeedOptions(
        poll_interval_s=settings.float("nameserver_poll_interval", defaults.poll_interval_s),
        listen=settings.bool("nameserver_listen_notify", True),
        stats_flush_s=settings.float("nameserver_stats_flush", defaults.stats_flush_s),
        instance=settings.str("nameserver_instance", defaults.instance),
    )
