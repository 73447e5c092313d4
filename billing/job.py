"""The daily lifecycle job (`zonehost billing run --date`, and `zonehost
serve` once a day): make the store agree with lifecycle.plan() for every
domain, on the given date.

Idempotent and catching up: each domain is handled in its own transaction
with its row locked; a reminder is logged with a unique (domain, number,
expiry) key in the same transaction as its outbox e-mail, so it goes out
once however often or late the job runs; suspension and deletion are
states, applied when missing. Deletion removes the zone through
storage.zones (its records stay in the audit log) and keeps the portfolio
row, marked deleted, for the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing import lifecycle, messages, outbox, portfolio
from billing.audit import audit
from billing.config import BillingConfig
from billing.fulfil import apply_option_effect
from billing.gateway import RegistryGateway, RegistryOp, RegistryRequest, WorkQueueGateway
from billing.i18n import language_of, text
from billing.mailer import Mailer, SmtpMailer
from billing.prices import Product, load_price_book
from storage.db import Database
from storage.models import Account, Zone, ZoneStatus
from storage.models.billing import (
    Domain,
    DomainOption,
    DomainStatus,
    OptionReminder,
    OptionStatus,
    Reminder,
    ReminderStatus,
)
from storage.models.mail import MailService
from storage.zones import SYSTEM, delete_zone, get_zone, set_zone_status

log = logging.getLogger(__name__)

_UNSERVED = (DomainStatus.SUSPENDED, DomainStatus.REDEMPTION)


@dataclass(slots=True)
class JobReport:
    today: date
    domains: int = 0
    reminders_sent: list[tuple[str, int]] = field(default_factory=list)
    reminders_skipped: list[tuple[str, int]] = field(default_factory=list)
    # (domain, product, number) of options ending on a date of their own
    option_reminders_sent: list[tuple[str, str, int]] = field(default_factory=list)
    suspended: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_changes: int = 0
    options_expired: int = 0
    mails_sent: int = 0
    errors: list[str] = field(default_factory=list)


def _lead_days(config: BillingConfig) -> int:
    """How long before expiry the earliest reminder of any profile falls."""
    lead = 0
    for profile in config.profiles.values():
        for rule in profile.reminders:
            lead = max(lead, -rule.offset.days + 31 * max(0, -rule.offset.months))
    return lead + 1


async def run_daily(
    config: BillingConfig, db: Database, today: date, *,
    gateway: RegistryGateway | None = None, mailer: Mailer | None = None,
) -> JobReport:
    """One run for `today`: reminders, suspensions, deletions, options, e-mail delivery."""
    gateway = gateway or WorkQueueGateway()
    report = JobReport(today)
    horizon = today + timedelta(days=_lead_days(config))
    async with db.read() as session:
        ids = list((await session.execute(
            select(Domain.id).where(
                Domain.status != DomainStatus.DELETED,
                or_(Domain.expires_on <= horizon, Domain.status != DomainStatus.ACTIVE),
            ).order_by(Domain.expires_on, Domain.id)
        )).scalars())
    for domain_id in ids:
        report.domains += 1
        try:
            async with db.write() as session:
                await _domain(session, config, gateway, domain_id, today, report)
        except Exception as exc:  # one broken domain must not stop the others
            log.exception("billing job: domain id=%d failed", domain_id)
            report.errors.append(f"domain {domain_id}: {exc}")
    async with db.read() as session:
        option_ids = await _options_due_for_reminders(session, today, horizon)
    for option_id in option_ids:
        try:
            async with db.write() as session:
                await _option_reminder(session, config, option_id, today, report)
        except Exception as exc:
            log.exception("billing job: option id=%d failed", option_id)
            report.errors.append(f"option {option_id}: {exc}")
    async with db.write() as session:
        await _options(session, today, report)
    if mailer is None and config.smtp is not None:
        mailer = SmtpMailer(config.smtp)
    if mailer is not None:
        delivery = await outbox.deliver(db, config, mailer)
        report.mails_sent = delivery.sent
    log.info(
        "billing job date=%s domains=%d reminders=%d suspended=%d deleted=%d errors=%d",
        today, report.domains, len(report.reminders_sent), len(report.suspended),
        len(report.deleted), len(report.errors),
    )
    return report


async def _domain(
    session: AsyncSession, config: BillingConfig, gateway: RegistryGateway, domain_id: int,
    today: date, report: JobReport,
) -> None:
    domain = await session.get(Domain, domain_id, with_for_update=True)
    if domain is None or domain.status is DomainStatus.DELETED:
        return
    profile = config.profile(domain.profile)
    plan = lifecycle.plan(profile, domain.expires_on, today, cancelled=domain.cancel_at_term)
    await _reminders(session, config, domain, profile, plan, today, report)
    if plan.status is lifecycle.Status.DELETED:
        await _delete(session, gateway, domain, today, report)
        return
    new_status = DomainStatus(plan.status.value)
    was_unserved = domain.status in _UNSERVED
    if domain.status is not new_status:
        before = domain.status.value
        domain.status = new_status
        domain.status_since = today
        report.status_changes += 1
        audit(session, SYSTEM, "billing.domain.status", "domain", domain.name,
              account_id=domain.account_id, before=before, after=new_status.value)
    zone = await get_zone(session, domain.name)
    if zone is None:
        return
    if not plan.zone_served and zone.status is ZoneStatus.ACTIVE:
        await set_zone_status(session, domain.name, ZoneStatus.SUSPENDED, SYSTEM)
        report.suspended.append(domain.name)
    elif plan.zone_served and was_unserved and zone.status is ZoneStatus.SUSPENDED:
        # Only a suspension billing made is lifted here (not an operator's).
        await set_zone_status(session, domain.name, ZoneStatus.ACTIVE, SYSTEM)
        report.reactivated.append(domain.name)


async def _reminders(
    session: AsyncSession, config: BillingConfig, domain: Domain,
    profile: lifecycle.LifecycleProfile, plan: lifecycle.Plan, today: date, report: JobReport,
) -> None:
    if not plan.due:
        return
    logged = (await session.execute(
        select(Reminder.reminder).where(Reminder.domain_id == domain.id,
                                        Reminder.expires_on == domain.expires_on)
    )).scalars().all()
    decision = lifecycle.reminders_to_send(plan.due, logged)
    for skipped in decision.skip:
        session.add(Reminder(
            domain_id=domain.id, domain_name=domain.name, reminder=skipped.number,
            expires_on=domain.expires_on, status=ReminderStatus.SKIPPED,
            due_on=skipped.due_on(domain.expires_on), sent_on=today, recipients=[],
        ))
        report.reminders_skipped.append((domain.name, skipped.number))
    rule = decision.send
    if rule is None:
        return
    to = await portfolio.recipients(session, domain, rule.recipients)
    account = await session.get(Account, domain.account_id)
    language = language_of(account.language if account else None)
    book = await load_price_book(session, domain.account_id)
    # Options ending with the domain; one ending earlier has reminders of its own.
    options = (await session.execute(
        select(DomainOption.product).where(DomainOption.domain_id == domain.id,
                                           DomainOption.status == OptionStatus.ACTIVE,
                                           DomainOption.expires_on == domain.expires_on)
    )).scalars().all()
    mail = messages.reminder(
        config, language, number=rule.number, domain_name=domain.name,
        expires_on=domain.expires_on, today=today, profile=profile,
        renew_cents=book.get(domain.extension, Product.RENEW),
        restore_fee_cents=book.get(domain.extension, Product.RESTORE),
        options=[text(language, f"product.{p}") for p in options],
    )
    session.add(Reminder(
        domain_id=domain.id, domain_name=domain.name, reminder=rule.number,
        expires_on=domain.expires_on, status=ReminderStatus.SENT,
        due_on=rule.due_on(domain.expires_on), sent_on=today, recipients=to,
    ))
    outbox.enqueue(session, config, kind=f"reminder.{rule.number}", recipients=to,
                   subject=mail.subject, body=mail.body, language=language,
                   account_id=domain.account_id, domain_name=domain.name)
    report.reminders_sent.append((domain.name, rule.number))


async def _options_due_for_reminders(
    session: AsyncSession, today: date, horizon: date
) -> list[int]:
    """Active options ending on a date of their own soon, on a live domain."""
    return list((await session.execute(
        select(DomainOption.id).join(Domain, Domain.id == DomainOption.domain_id).where(
            DomainOption.status == OptionStatus.ACTIVE,
            DomainOption.cancel_at_term.is_(False),
            DomainOption.expires_on >= today, DomainOption.expires_on <= horizon,
            DomainOption.expires_on != Domain.expires_on,
            Domain.status.in_((DomainStatus.ACTIVE, DomainStatus.EXPIRED)),
            Domain.cancel_at_term.is_(False),
        ).order_by(DomainOption.expires_on, DomainOption.id)
    )).scalars())


async def _option_reminder(
    session: AsyncSession, config: BillingConfig, option_id: int, today: date,
    report: JobReport,
) -> None:
    """Like a domain's reminders, logged per (option, number, expiry) in the same
    transaction as the e-mail, so each goes out once."""
    option = await session.get(DomainOption, option_id, with_for_update=True)
    if option is None or option.status is not OptionStatus.ACTIVE or option.cancel_at_term:
        return
    domain = await session.get(Domain, option.domain_id)
    if domain is None or option.expires_on == domain.expires_on:
        return
    profile = config.profile(domain.profile)
    due = lifecycle.option_reminders_due(profile, option.expires_on, today)
    if not due:
        return
    logged = (await session.execute(
        select(OptionReminder.reminder).where(OptionReminder.option_id == option.id,
                                              OptionReminder.expires_on == option.expires_on)
    )).scalars().all()
    decision = lifecycle.reminders_to_send(due, logged)
    rows: list[tuple[lifecycle.ReminderRule, ReminderStatus, list[str]]] = [
        (r, ReminderStatus.SKIPPED, []) for r in decision.skip]
    if decision.send is not None:
        rule = decision.send
        to = await portfolio.recipients(session, domain, rule.recipients)
        account = await session.get(Account, domain.account_id)
        language = language_of(account.language if account else None)
        book = await load_price_book(session, domain.account_id)
        product = Product(option.product)
        mail = messages.option_reminder(
            config, language, number=rule.number, domain_name=domain.name,
            product=text(language, f"product.{option.product}"), expires_on=option.expires_on,
            domain_expires_on=domain.expires_on, today=today,
            price_cents=book.get(domain.extension, product),
        )
        rows.append((rule, ReminderStatus.SENT, to))
        outbox.enqueue(session, config, kind=f"option_reminder.{rule.number}", recipients=to,
                       subject=mail.subject, body=mail.body, language=language,
                       account_id=domain.account_id, domain_name=domain.name)
        report.option_reminders_sent.append((domain.name, option.product, rule.number))
    for rule, status, to in rows:
        session.add(OptionReminder(
            option_id=option.id, domain_name=domain.name, product=option.product,
            reminder=rule.number, expires_on=option.expires_on, status=status,
            due_on=rule.due_on(option.expires_on), sent_on=today, recipients=to,
        ))


async def _delete(
    session: AsyncSession, gateway: RegistryGateway, domain: Domain, today: date,
    report: JobReport,
) -> None:
    options = list((await session.execute(
        select(DomainOption).where(DomainOption.domain_id == domain.id)
    )).scalars())
    snapshot = {
        "expires_on": domain.expires_on.isoformat(), "status": domain.status.value,
        "profile": domain.profile, "plan": domain.plan, "nameservers": domain.nameservers,
        "owner_contact_id": domain.owner_contact_id,
        "admin_contact_id": domain.admin_contact_id,
        "billing_contact_id": domain.billing_contact_id,
        "business_unit_id": domain.business_unit_id, "cancelled": domain.cancel_at_term,
        "options": [{"product": o.product, "expires_on": o.expires_on.isoformat()}
                    for o in options],
    }
    for option in options:
        option.status = OptionStatus.EXPIRED
    domain.status = DomainStatus.DELETED
    domain.status_since = today
    domain.deleted_on = today
    domain.transfer_code_enc = None
    if await get_zone(session, domain.name) is not None:
        await delete_zone(session, domain.name, SYSTEM)  # its records go to the audit log
    audit(session, SYSTEM, "billing.domain.delete", "domain", domain.name,
          account_id=domain.account_id, before=snapshot, after=None)
    await gateway.submit(
        session, RegistryRequest(RegistryOp.DELETE, domain.name, domain.account_id), SYSTEM
    )
    report.deleted.append(domain.name)


async def _options(session: AsyncSession, today: date, report: JobReport) -> None:
    """Expire options past their term; give hosted zones the packs they paid for."""
    expired = list(await session.execute(
        select(DomainOption, Domain.name).join(Domain, Domain.id == DomainOption.domain_id)
        .where(DomainOption.status == OptionStatus.ACTIVE, DomainOption.expires_on < today)
        .with_for_update(of=DomainOption)
    ))
    for option, name in expired:
        option.status = OptionStatus.EXPIRED
        report.options_expired += 1
        await apply_option_effect(session, name, Product(option.product), False, SYSTEM)
        audit(session, SYSTEM, "billing.option.expire", "domain", name, account_id=None,
              after={"product": option.product})
    # A pack bought before its zone was hosted reaches the zone once it is.
    missing = (await session.execute(
        select(Domain.name).join(DomainOption, DomainOption.domain_id == Domain.id)
        .join(Zone, Zone.name == Domain.name)
        .outerjoin(MailService, MailService.zone_id == Zone.id)
        .where(DomainOption.status == OptionStatus.ACTIVE,
               DomainOption.product == Product.MAIL_REDIRECT_PACK.value,
               Domain.status != DomainStatus.DELETED,
               or_(MailService.id.is_(None), and_(MailService.redirect_pack.is_(False))))
    )).scalars().all()
    for name in missing:
        await apply_option_effect(session, name, Product.MAIL_REDIRECT_PACK, True, SYSTEM)
