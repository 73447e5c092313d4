"""BillingConfig: every setting of the billing service, as one frozen value.

zonehost/config.py builds it from the TOML file and the environment
(`billing_config(settings)`); the defaults run with no configuration: a
French seller at 20 % VAT, e-mails kept in the outbox, no card provider.

Settings (a `[billing]` section, or ZONEHOST_BILLING_<NAME>):
  seller_name, seller_address, seller_country (FR), seller_vat_number, seller_email
  currency (EUR), vat_rates ["DE=19", "FI=25.5"] (percent, over the built-in EU table)
  profiles ["mine"] (extra profile names), profile_<name>_reminders
  ["1:-2m:billing", "5:+3d:billing+owner"], profile_<name>_suspend_after_days,
  profile_<name>_renew_until_days, profile_<name>_restore_until_days,
  profile_<name>_min_dns_cut_days (each overrides the built-in of that name, or
  "standard"), extension_profiles ["com=icann-errp", "fr=standard"],
  default_profile (standard)
  mail_from, smtp_host (unset: the outbox is not relayed), smtp_port (25),
  smtp_username, smtp_password, smtp_starttls (false), smtp_timeout_s (30)
  provider_url, provider_api_key, provider_webhook_secret (card payments),
  provider_tolerance_s (300)
  secret_key (encrypts transfer codes), public_url, order_prefix (ZH),
  invoice_prefix (F), renewal_window_days (90), nameservers ["ns1.example"]
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Protocol

from billing.lifecycle import (
    BUILTIN_PROFILES,
    GENERIC_TLDS,
    ICANN_ERRP,
    STANDARD,
    LifecycleError,
    LifecycleProfile,
    ReminderRule,
)
from billing.vat import EU_STANDARD_RATES_BP

DEV_SECRET_KEY = "zonehost-development-secret-do-not-use-in-production"


class BillingConfigError(ValueError):
    """A billing setting is invalid."""


class SettingsReader(Protocol):
    """What the billing config needs from zonehost's Settings."""

    def str(self, key: builtins.str, default: builtins.str) -> builtins.str: ...
    def optional_str(self, key: builtins.str) -> builtins.str | None: ...
    def int(self, key: builtins.str, default: builtins.int) -> builtins.int: ...
    def bool(self, key: builtins.str, default: builtins.bool) -> builtins.bool: ...
    def list(
        self, key: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]: ...
    def has(self, key: builtins.str) -> builtins.bool: ...


@dataclass(frozen=True, slots=True)
class Seller:
    name: str = "zonehost"
    address: str = ""
    country: str = "FR"
    vat_number: str = ""
    email: str = "billing@zonehost.invalid"


@dataclass(frozen=True, slots=True)
class SmtpRelay:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """The card payment provider: hosted payment page and signed webhooks."""

    base_url: str
    api_key: str
    webhook_secret: str
    tolerance_s: int = 300  # a webhook older (or newer) than this is refused


@dataclass(frozen=True, slots=True)
class BillingConfig:
    seller: Seller = field(default_factory=Seller)
    currency: str = "EUR"
    vat_rates_bp: Mapping[str, int] = field(default_factory=lambda: dict(EU_STANDARD_RATES_BP))
    profiles: Mapping[str, LifecycleProfile] = field(
        default_factory=lambda: {p.name: p for p in BUILTIN_PROFILES}
    )
    extension_profiles: Mapping[str, str] = field(
        default_factory=lambda: {tld: ICANN_ERRP.name for tld in GENERIC_TLDS}
    )
    default_profile: str = STANDARD.name
    mail_from: str = "Domains service <domains@zonehost.invalid>"
    smtp: SmtpRelay | None = None
    provider: ProviderConfig | None = None
    secret_key: str = DEV_SECRET_KEY
    public_url: str = "http://127.0.0.1:8053"
    order_prefix: str = "ZH"
    invoice_prefix: str = "F"
    renewal_window_days: int = 90
    nameservers: tuple[str, ...] = ("ns1.zonehost.invalid", "ns2.zonehost.invalid")
    outbox_max_attempts: int = 8

    def __post_init__(self) -> None:
        problems = []
        if self.default_profile not in self.profiles:
            problems.append(f"default_profile {self.default_profile!r} is not a profile")
        for ext, name in self.extension_profiles.items():
            if name not in self.profiles:
                problems.append(f"extension {ext!r} uses the unknown profile {name!r}")
        if not self.order_prefix.isalpha():
            problems.append("order_prefix must be letters only")
        if problems:
            raise BillingConfigError("billing: " + "; ".join(problems))

    def profile_for(self, extension: str) -> LifecycleProfile:
        name = self.extension_profiles.get(extension.lower().strip("."), self.default_profile)
        return self.profiles[name]

    def profile(self, name: str) -> LifecycleProfile:
        try:
            return self.profiles[name]
        except KeyError:
            raise BillingConfigError(f"unknown lifecycle profile {name!r}") from None

    @classmethod
    def from_settings(cls, settings: SettingsReader) -> BillingConfig:
        try:
            return _from_settings(settings)
        except LifecycleError as exc:
            raise BillingConfigError(str(exc)) from exc


def _pairs(items: list[str], key: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise BillingConfigError(f"setting {key}: expected NAME=VALUE, got {item!r}")
        result[name.strip().lower().strip(".")] = value.strip()
    return result


def parse_rates(items: list[str]) -> dict[str, int]:
    """['DE=19', 'FI=25.5'] -> {'DE': 1900, 'FI': 2550} (basis points)."""
    rates: dict[str, int] = {}
    for country, value in _pairs(items, "billing_vat_rates").items():
        try:
            percent = Decimal(value)
        except InvalidOperation as exc:
            raise BillingConfigError(f"billing_vat_rates: bad rate {value!r}") from exc
        bp = percent * 100
        if bp != bp.to_integral_value() or not 0 <= bp <= 10000:
            raise BillingConfigError(f"billing_vat_rates: bad rate {value!r}")
        rates[country.upper()] = int(bp)
    return rates


def _profile(settings: SettingsReader, name: str, base: LifecycleProfile) -> LifecycleProfile:
    key = f"billing_profile_{name.replace('-', '_')}_"
    reminders = base.reminders
    if settings.has(key + "reminders"):
        reminders = tuple(
            ReminderRule.from_text(t) for t in settings.list(key + "reminders", [])
        )
    return replace(
        base,
        name=name,
        reminders=reminders,
        suspend_after_days=settings.int(key + "suspend_after_days", base.suspend_after_days),
        renew_until_days=settings.int(key + "renew_until_days", base.renew_until_days),
        restore_until_days=settings.int(key + "restore_until_days", base.restore_until_days),
        min_dns_cut_days=settings.int(key + "min_dns_cut_days", base.min_dns_cut_days),
    )


def _from_settings(s: SettingsReader) -> BillingConfig:
    defaults = BillingConfig()
    builtin = {p.name: p for p in BUILTIN_PROFILES}
    names = list(builtin) + [n for n in s.list("billing_profiles", []) if n not in builtin]
    profiles = {n: _profile(s, n, builtin.get(n, STANDARD)) for n in names}
    extensions = dict(defaults.extension_profiles)
    extensions.update(_pairs(s.list("billing_extension_profiles", []), "extension_profiles"))
    rates = dict(defaults.vat_rates_bp)
    rates.update(parse_rates(s.list("billing_vat_rates", [])))
    smtp_host = s.optional_str("billing_smtp_host")
    smtp = None
    if smtp_host:
        smtp = SmtpRelay(
            host=smtp_host, port=s.int("billing_smtp_port", 25),
            username=s.optional_str("billing_smtp_username"),
            password=s.optional_str("billing_smtp_password"),
            starttls=s.bool("billing_smtp_starttls", False),
            timeout_s=float(s.int("billing_smtp_timeout_s", 30)),
        )
    provider_url = s.optional_str("billing_provider_url")
    provider = None
    if provider_url:
        secret = s.optional_str("billing_provider_webhook_secret")
        if not secret:
            raise BillingConfigError("billing_provider_url needs billing_provider_webhook_secret")
        provider = ProviderConfig(
            base_url=provider_url.rstrip("/"),
            api_key=s.str("billing_provider_api_key", ""),
            webhook_secret=secret,
            tolerance_s=s.int("billing_provider_tolerance_s", 300),
        )
    seller = Seller(
        name=s.str("billing_seller_name", defaults.seller.name),
        address=s.str("billing_seller_address", defaults.seller.address),
        country=s.str("billing_seller_country", defaults.seller.country).upper(),
        vat_number=s.str("billing_seller_vat_number", defaults.seller.vat_number),
        email=s.str("billing_seller_email", defaults.seller.email),
    )
    return BillingConfig(
        seller=seller,
        currency=s.str("billing_currency", defaults.currency).upper(),
        vat_rates_bp=rates,
        profiles=profiles,
        extension_profiles=extensions,
        default_profile=s.str("billing_default_profile", defaults.default_profile),
        mail_from=s.str("billing_mail_from", defaults.mail_from),
        smtp=smtp,
        provider=provider,
        secret_key=s.str("billing_secret_key", defaults.secret_key),
        public_url=s.str("billing_public_url", defaults.public_url).rstrip("/"),
        order_prefix=s.str("billing_order_prefix", defaults.order_prefix).upper(),
        invoice_prefix=s.str("billing_invoice_prefix", defaults.invoice_prefix),
        renewal_window_days=s.int("billing_renewal_window_days", defaults.renewal_window_days),
        nameservers=tuple(s.list("billing_nameservers", list(defaults.nameservers))),
    )
