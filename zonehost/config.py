"""Configuration: one TOML file, overridden setting by setting by the
environment (`ZONEHOST_<SETTING>`).

A TOML section flattens into its settings' names: `[nameserver] workers = 2`
is the setting `nameserver_workers`, overridden by
`ZONEHOST_NAMESERVER_WORKERS`. Lists are TOML arrays in the file and
comma-separated in the environment. Nothing below this package reads
`os.environ`: each service gets a frozen config value built here.
"""

from __future__ import annotations

import builtins
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mx_forwarder.config import ForwarderConfig
from nameserver.feed import FeedOptions
from nameserver.options import NameserverOptions
from nameserver.rrl import RrlOptions
from storage.db import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    from billing.config import BillingConfig
    from zoneapi.config import ZoneApiConfig

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

    def __init__(self, file_values: Mapping[str, Any], env: Mapping[builtins.str, builtins.str]) -> None:
        self._file = _flatten(file_values)
        self._env = {
            k[len(ENV_PREFIX):].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)
        }

    @classmethod
    def load(
        cls, path: builtins.str | Path | None = None, env: Mapping[builtins.str, builtins.str] | None = None
    ) -> Settings:
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

    def _raw(self, key: builtins.str) -> Any:
        if key in self._env:
            return self._env[key]
        return self._file.get(key)

    def has(self, key: builtins.str) -> builtins.bool:
        return key in self._env or key in self._file

    def str(self, key: builtins.str, default: builtins.str) -> builtins.str:
        value = self._raw(key)
        return default if value is None else str(value)

    def optional_str(self, key: builtins.str) -> builtins.str | None:
        value = self._raw(key)
        return None if value in (None, "") else str(value)

    def int(self, key: builtins.str, default: builtins.int) -> builtins.int:
        value = self._raw(key)
        if value is None:
            return default
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {key}: expected an integer, got {value!r}") from exc

    def float(self, key: builtins.str, default: builtins.float) -> builtins.float:
        value = self._raw(key)
        if value is None:
            return default
        try:
            return float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"setting {key}: expected a number, got {value!r}") from exc

    def bool(self, key: builtins.str, default: builtins.bool) -> builtins.bool:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, builtins.bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"setting {key}: expected true or false, got {value!r}")

    def list(self, key: builtins.str, default: builtins.list[builtins.str]) -> builtins.list[builtins.str]:
        value = self._raw(key)
        if value is None:
            return list(default)
        if isinstance(value, builtins.list):
            return [str(v) for v in value]
        return [part.strip() for part in str(value).split(",") if part.strip()]

    @property
    def database_url(self) -> builtins.str:
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
    """`[nameserver]` settings (ZONEHOST_NAMESERVER_*); defaults are NameserverOptions'."""
    d = NameserverOptions()
    rate = settings.int("nameserver_rrl_rate", 0)
    return NameserverOptions(
        udp_payload=settings.int("nameserver_udp_payload", d.udp_payload),
        cache_entries=settings.int("nameserver_cache_entries", d.cache_entries),
        tcp_idle_timeout_s=settings.float("nameserver_tcp_idle_timeout", d.tcp_idle_timeout_s),
        tcp_max_connections=settings.int("nameserver_tcp_max_connections", d.tcp_max_connections),
        tcp_max_per_client=settings.int("nameserver_tcp_max_per_client", d.tcp_max_per_client),
        reuse_port=settings.int("nameserver_workers", 1) > 1,
        rrl=RrlOptions(rate_per_s=rate, slip=settings.int("nameserver_rrl_slip", 2))
        if rate > 0
        else None,
        cookies=settings.bool("nameserver_cookies", d.cookies),
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


def forwarder_config(settings: Settings) -> ForwarderConfig:
    """`[mx_forwarder]` settings (ZONEHOST_MX_FORWARDER_*) as the forwarder's config.

    With no `srs_keys`, a key is kept in `srs_key_file` (created once), so the
    defaults work with no configuration and bounces survive a restart.
    """
    import secrets
    from types import MappingProxyType

    d = ForwarderConfig()
    p = "mx_forwarder_"
    hostname = settings.str(p + "hostname", d.hostname)
    keys = [k.encode() for k in settings.list(p + "srs_keys", [])]
    if not keys:
        key_file = Path(settings.str(p + "srs_key_file", "var/srs.key"))
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(32) + "\n")
            key_file.chmod(0o600)
        keys = [key_file.read_text().strip().encode()]
    transport = {}
    for entry in settings.list(p + "transport", []):
        domain, sep, target = entry.partition("=")
        if not sep or not domain.strip():
            raise ConfigError(f"setting {p}transport: expected domain=host:port, got {entry!r}")
        transport[domain.strip().lower().rstrip(".")] = parse_hostport(target, 25)
    resolver = settings.optional_str(p + "resolver")
    return ForwarderConfig(
        listen=parse_hostport(settings.str(p + "listen", "127.0.0.1:2525"), 25),
        hostname=hostname,
        tls_cert=settings.optional_str(p + "tls_cert"),
        tls_key=settings.optional_str(p + "tls_key"),
        max_message_bytes=settings.int(p + "max_message_bytes", d.max_message_bytes),
        max_recipients=settings.int(p + "max_recipients", d.max_recipients),
        max_connections=settings.int(p + "max_connections", d.max_connections),
        max_connections_per_client=settings.int(p + "max_connections_per_client",
                                                d.max_connections_per_client),
        max_messages_per_client_per_minute=settings.int(
            p + "max_messages_per_client_per_minute", d.max_messages_per_client_per_minute),
        command_timeout_s=settings.float(p + "command_timeout", d.command_timeout_s),
        data_timeout_s=settings.float(p + "data_timeout", d.data_timeout_s),
        max_hops=settings.int(p + "max_hops", d.max_hops),
        alias_cache_check_s=settings.float(p + "alias_cache_check", d.alias_cache_check_s),
        alias_cache_max_age_s=settings.float(p + "alias_cache_max_age", d.alias_cache_max_age_s),
        srs_domain=settings.str(p + "srs_domain", hostname).lower().rstrip("."),
        srs_keys=tuple(keys),
        srs_max_age_days=settings.int(p + "srs_max_age_days", d.srs_max_age_days),
        resolver=parse_hostport(resolver, 53) if resolver else None,
        transport=MappingProxyType(transport),
        delivery_port=settings.int(p + "delivery_port", d.delivery_port),
        delivery_concurrency=settings.int(p + "delivery_concurrency", d.delivery_concurrency),
        connect_timeout_s=settings.float(p + "connect_timeout", d.connect_timeout_s),
        delivery_timeout_s=settings.float(p + "delivery_timeout", d.delivery_timeout_s),
        dns_timeout_s=settings.float(p + "dns_timeout", d.dns_timeout_s),
        lease_s=settings.float(p + "lease", d.lease_s),
        retry_base_s=settings.float(p + "retry_base", d.retry_base_s),
        retry_max_s=settings.float(p + "retry_max", d.retry_max_s),
        max_queue_age_s=settings.float(p + "max_queue_age", d.max_queue_age_s),
        poll_interval_s=settings.float(p + "poll_interval", d.poll_interval_s),
        instance=settings.optional_str(p + "instance"),
        spool_dir=settings.optional_str(p + "spool_dir"),
        spool_threshold_bytes=settings.int(p + "spool_threshold_bytes",
                                           d.spool_threshold_bytes),
        sync_commit=settings.bool(p + "sync_commit", d.sync_commit),
        overload_high=settings.int(p + "overload_high", d.overload_high),
        overload_low=settings.int(p + "overload_low", d.overload_low),
        overload_tarpit_from=settings.int(p + "overload_tarpit_from", d.overload_tarpit_from),
        overload_tarpit_max_delay_s=settings.float(p + "overload_tarpit_max_delay",
                                                   d.overload_tarpit_max_delay_s),
        overload_check_s=settings.float(p + "overload_check", d.overload_check_s),
        min_free_bytes=settings.int(p + "min_free_bytes", d.min_free_bytes),
        overload_write_wait_s=settings.float(p + "overload_write_wait", d.overload_write_wait_s),
        sign_dkim=settings.bool(p + "sign_dkim", d.sign_dkim),
        sign_arc=settings.bool(p + "sign_arc", d.sign_arc),
        signing_domain=settings.optional_str(p + "signing_domain"),
        signing_selector=settings.str(p + "signing_selector", d.signing_selector),
        signing_key_file=settings.optional_str(p + "signing_key_file"),
        auth_results=settings.bool(p + "auth_results", d.auth_results),
        confirm_url=settings.str(p + "confirm_url", d.confirm_url),
    )


def zoneapi_config(settings: Settings) -> ZoneApiConfig:
    """The zone API's config (`[zoneapi]` settings, see zoneapi/config.py)."""
    from zoneapi.config import from_settings

    return from_settings(settings, ConfigError)
