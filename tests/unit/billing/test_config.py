"""BillingConfig from settings: defaults, profiles, rates, and refusals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from billing.config import BillingConfig, parse_rates
from zonehost.config import ConfigError, Settings, billing_config


def _config(values: Mapping[str, Any], env: Mapping[str, str] | None = None) -> BillingConfig:
    return billing_config(Settings({"billing": dict(values)}, env or {}))


def test_defaults_run_without_configuration() -> None:
    config = _config({})
    assert config.seller.country == "FR" and config.vat_rates_bp["FR"] == 2000
    assert config.profile_for("fr").name == "standard"
    assert config.profile_for("com").name == "icann-errp"
    assert config.smtp is None and config.provider is None


def test_profiles_and_extensions_are_configurable() -> None:
    config = _config({
        "profiles": ["short"],
        "profile_short_reminders": ["1:-10d:owner", "2:0d:owner+billing"],
        "profile_short_suspend_after_days": 2,
        "profile_standard_suspend_after_days": 7,
        "extension_profiles": ["io=short", ".be=short"],
        "vat_rates": ["FI=25.5"],
    })
    short = config.profile("short")
    assert [r.number for r in short.reminders] == [1, 2] and short.suspend_after_days == 2
    assert config.profile("standard").suspend_after_days == 7
    assert config.profile_for("io") is short and config.profile_for("be") is short
    assert config.vat_rates_bp["FI"] == 2550


@pytest.mark.parametrize(
    "values",
    [
        {"extension_profiles": ["io=missing"]},
        {"profile_standard_restore_until_days": 3},
        {"profile_standard_reminders": ["1:-2q:owner"]},
        {"vat_rates": ["FR=abc"]},
        {"provider_url": "http://127.0.0.1:1"},
    ],
)
def test_bad_settings_are_refused(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _config(values)


def test_the_environment_wins_over_the_file() -> None:
    config = _config({"seller_country": "FR"}, {"ZONEHOST_BILLING_SELLER_COUNTRY": "de"})
    assert config.seller.country == "DE"


def test_parse_rates() -> None:
    assert parse_rates(["de=19", "FI=25.5"]) == {"DE": 1900, "FI": 2550}
