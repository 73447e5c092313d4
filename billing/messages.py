"""The texts of billing's e-mails, in the account's language."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from billing.config import BillingConfig
from billing.i18n import format_date, text
from billing.lifecycle import LifecycleProfile
from billing.names import shown
from billing.vat import format_cents


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    body: str


def reminder(
    config: BillingConfig, language: str, *, number: int, domain_name: str,
    expires_on: date, today: date, profile: LifecycleProfile, renew_cents: int | None,
    restore_fee_cents: int | None, options: Sequence[str] = (),
) -> Rendered:
    domain = shown(domain_name)
    days = (expires_on - today).days
    when = {"domain": domain, "expires_on": format_date(expires_on, language)}
    paragraphs = [text(language, "reminder.greeting")]
    if days > 0:
        paragraphs.append(text(language, "reminder.before", days=days, **when))
    elif days == 0:
        paragraphs.append(text(language, "reminder.today", **when))
    else:
        paragraphs.append(text(
            language, "reminder.after",
            suspend_on=format_date(expires_on + timedelta(days=profile.suspend_after_days),
                                   language),
            delete_on=format_date(expires_on + timedelta(days=profile.delete_after_days),
                                  language),
            **when,
        ))
    if options:
        paragraphs.append(text(language, "reminder.options", options=", ".join(options)))
    if renew_cents is not None:
        paragraphs.append(text(language, "reminder.price",
                               price=format_cents(renew_cents, config.currency, language)))
    if restore_fee_cents is not None:
        paragraphs.append(text(
            language, "reminder.restore",
            restore_from=format_date(
                expires_on + timedelta(days=profile.renew_until_days + 1), language),
            restore_until=format_date(
                expires_on + timedelta(days=profile.restore_until_days), language),
            fee=format_cents(restore_fee_cents, config.currency, language),
        ))
    paragraphs.append(text(language, "reminder.renew", url=f"{config.public_url}/renewals"))
    paragraphs.append(text(language, "reminder.signature"))
    return Rendered(text(language, "reminder.subject", n=number), "\n\n".join(paragraphs) + "\n")


def option_reminder(
    config: BillingConfig, language: str, *, number: int, domain_name: str, product: str,
    expires_on: date, domain_expires_on: date, today: date, price_cents: int | None,
) -> Rendered:
    """An option ending on its own date: it simply stops at its term (no grace period)."""
    days = (expires_on - today).days
    values = {"domain": shown(domain_name), "product": product,
              "expires_on": format_date(expires_on, language),
              "domain_expires_on": format_date(domain_expires_on, language)}
    paragraphs = [text(language, "reminder.greeting")]
    if days > 0:
        paragraphs.append(text(language, "reminder.option.before", days=days, **values))
    else:
        paragraphs.append(text(language, "reminder.option.today", **values))
    if price_cents is not None:
        paragraphs.append(text(language, "reminder.option.price",
                               price=format_cents(price_cents, config.currency, language)))
    paragraphs.append(text(language, "reminder.renew", url=f"{config.public_url}/renewals"))
    paragraphs.append(text(language, "reminder.signature"))
    return Rendered(text(language, "reminder.subject", n=number), "\n\n".join(paragraphs) + "\n")


def invoice_issued(
    config: BillingConfig, language: str, *, number: str, order: str, total_cents: int
) -> Rendered:
    return Rendered(
        text(language, "invoice.mail.subject", number=number),
        text(language, "invoice.mail.body", number=number, order=order,
             total=format_cents(total_cents, config.currency, language),
             url=f"{config.public_url}/invoices") + "\n",
    )
