"""The domain lifecycle as pure functions of (profile, expiry date, day).

A *profile* holds the timings; each extension uses one. Nothing here reads
the clock or the store: the daily job asks `plan()` what is true on a given
day and makes the store agree, so running it twice, or late, converges to
the same state.

The default profile, "standard", follows the brief of the domains service:

- reminder e-mails, subject "Your subscriptions are about to expire –
  action needed – reminder N":
  N=1 two months before expiry and N=2 one month before (billing contact
  only); N=3 five days before, N=4 on the expiry day and N=5 three days
  after expiry (billing contact and owner). The brief calls N=5 "the
  deletion day, expiry + 3": we read it as the day the domain enters the
  deletion process (it is listed among the "domains being deleted" and will
  be suspended two days later), not the day it is deleted, which is
  expiry + 61. So the parenthesis "(billing contact only)" covers N=1 and
  N=2, and "(billing contact and owner)" covers N=3, N=4 and N=5.
- Through the expiry day the domain is active; from expiry + 1 it is
  expired but still served; from expiry + 5 it is suspended (the zone is
  not served, aliases stop); renewal stays at the normal price until
  expiry + 30; from expiry + 31 to expiry + 60 it is in redemption and
  comes back with a restore fee; from expiry + 61 it is deleted.
- A renewal paid on or before the expiry day (card included) therefore
  never interrupts anything.

The second built-in profile, "icann-errp", follows ICANN's Expired
Registration Recovery Policy for generic TLDs: the owner (and the billing
contact) is notified about a month and about a week before expiry and
within five days after it (N=3 at expiry + 3, with restore instructions);
the DNS resolution path is cut the day after expiry, which is more than
the 8 days the policy requires before deletion; renewal at the normal
price until expiry + 30, restore (the registry's 30-day redemption grace
period) until expiry + 60, deletion at expiry + 61.

A domain whose owner cancelled it ("cancel at term") gets no reminders and
is deleted the day after its expiry date.

An option (e.g. the mail-redirect pack) runs from its purchase for whole
years, so it usually ends on a date of its own: it then gets the profile's
reminders that fall on or before an expiry day, counted from its own
expiry date (`option_reminders_due`), and simply stops after its term. An
option ending with its domain is announced in the domain's reminders.

A reminder is sent once per (domain, number, expiry date). When the job
runs late and several reminders fell due, only the latest one is sent; the
earlier ones are logged as skipped, so they can never be sent afterwards.
A renewal moves the expiry date, which starts a fresh cycle.
"""

from __future__ import annotations

import calendar
import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta


class LifecycleError(ValueError):
    """A lifecycle profile is inconsistent."""


class Recipient(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    BILLING = "billing"


class Status(enum.StrEnum):
    """What the domain is on a given day (the values of DomainStatus)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    SUSPENDED = "suspended"
    REDEMPTION = "redemption"
    DELETED = "deleted"


class Offer(enum.StrEnum):
    """What the owner can order for the domain on a given day."""

    RENEW = "renew"  # the normal renewal price
    RESTORE = "restore"  # renewal plus the restore fee
    NONE = "none"  # deleted: nothing can bring it back


def add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the month's last day (31 Mar - 1m = 28 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


_OFFSET = re.compile(r"^([+-]?)(\d{1,4})([dm])$")


@dataclass(frozen=True, slots=True)
class Offset:
    """A distance from the expiry date: whole months, or days."""

    months: int = 0
    days: int = 0

    def apply(self, expires_on: date) -> date:
        return add_months(expires_on, self.months) + timedelta(days=self.days)

    @classmethod
    def from_text(cls, text: str) -> Offset:
        """'-2m', '-5d', '0d', '+3d'."""
        match = _OFFSET.match(text.strip().lower())
        if match is None:
            raise LifecycleError(f"invalid offset {text!r}: expected e.g. -2m, -5d, 0d or +3d")
        sign = -1 if match.group(1) == "-" else 1
        value = sign * int(match.group(2))
        return cls(months=value) if match.group(3) == "m" else cls(days=value)

    def to_text(self) -> str:
        value, unit = (self.months, "m") if self.months else (self.days, "d")
        return f"{value:+d}{unit}" if value else "0d"


@dataclass(frozen=True, slots=True)
class ReminderRule:
    number: int
    offset: Offset
    recipients: tuple[Recipient, ...]

    def due_on(self, expires_on: date) -> date:
        return self.offset.apply(expires_on)

    @classmethod
    def from_text(cls, text: str) -> ReminderRule:
        """'1:-2m:billing' or '5:+3d:billing+owner'."""
        parts = text.strip().split(":")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            raise LifecycleError(f"invalid reminder {text!r}: expected N:OFFSET:who+who")
        try:
            who = tuple(Recipient(w.strip().lower()) for w in parts[2].split("+") if w.strip())
        except ValueError as exc:
            raise LifecycleError(
                f"invalid reminder {text!r}: recipients are owner, admin, billing"
            ) from exc
        if not who:
            raise LifecycleError(f"invalid reminder {text!r}: no recipient")
        return cls(int(parts[0]), Offset.from_text(parts[1]), who)

    def to_text(self) -> str:
        return f"{self.number}:{self.offset.to_text()}:{'+'.join(self.recipients)}"


@dataclass(frozen=True, slots=True)
class LifecycleProfile:
    name: str
    reminders: tuple[ReminderRule, ...]
    suspend_after_days: int = 5  # zone cut on expiry + N
    renew_until_days: int = 30  # normal renewal price through expiry + N
    restore_until_days: int = 60  # restore fee through expiry + N, deleted the day after
    min_dns_cut_days: int = 0  # the cut must precede deletion by at least N days (ERRP: 8)

    def __post_init__(self) -> None:
        problems = check_profile(self)
        if problems:
            raise LifecycleError(f"lifecycle profile {self.name!r}: " + "; ".join(problems))

    @property
    def delete_after_days(self) -> int:
        return self.restore_until_days + 1

    def rule(self, number: int) -> ReminderRule | None:
        return next((r for r in self.reminders if r.number == number), None)


def check_profile(profile: LifecycleProfile) -> list[str]:
    """Every reason why `profile` cannot work (empty when it can)."""
    problems: list[str] = []
    numbers = [r.number for r in profile.reminders]
    if len(set(numbers)) != len(numbers):
        problems.append("reminder numbers must be unique")
    if numbers != sorted(numbers):
        problems.append("reminders must be listed by number")
    probe = date(2001, 3, 31)  # a month end exercises the month clamp
    dues = [r.due_on(probe) for r in profile.reminders]
    if dues != sorted(dues):
        problems.append("reminders must fall due in the order of their numbers")
    if profile.suspend_after_days < 1:
        problems.append("suspension must come after the expiry day")
    if profile.renew_until_days < 0:
        problems.append("renew_until_days cannot be negative")
    if profile.restore_until_days < profile.renew_until_days:
        problems.append("the restore period cannot end before the renewal period")
    if profile.suspend_after_days > profile.delete_after_days:
        problems.append("suspension must come no later than deletion")
    if profile.delete_after_days - profile.suspend_after_days < profile.min_dns_cut_days:
        problems.append(
            f"the zone must be cut at least {profile.min_dns_cut_days} days before deletion"
        )
    if any(r.offset.days > profile.restore_until_days for r in profile.reminders):
        problems.append("a reminder falls after deletion")
    return problems


def _rules(*texts: str) -> tuple[ReminderRule, ...]:
    return tuple(ReminderRule.from_text(t) for t in texts)


STANDARD = LifecycleProfile(
    name="standard",
    reminders=_rules(
        "1:-2m:billing", "2:-1m:billing", "3:-5d:billing+owner", "4:0d:billing+owner",
        "5:+3d:billing+owner",
    ),
)

ICANN_ERRP = LifecycleProfile(
    name="icann-errp",
    reminders=_rules("1:-1m:owner+billing", "2:-7d:owner+billing", "3:+3d:owner+billing"),
    suspend_after_days=1,
    renew_until_days=30,
    restore_until_days=60,
    min_dns_cut_days=8,
)

BUILTIN_PROFILES: tuple[LifecycleProfile, ...] = (STANDARD, ICANN_ERRP)

# Generic TLDs use the ERRP profile unless configured otherwise.
GENERIC_TLDS: frozenset[str] = frozenset({
    "com", "net", "org", "info", "biz", "name", "pro", "mobi", "asia", "tel", "xyz",
    "online", "site", "shop", "app", "dev", "io",
})


@dataclass(frozen=True, slots=True)
class Plan:
    """What holds for one domain on one day."""

    status: Status
    zone_served: bool
    offer: Offer
    days_after_expiry: int  # negative before expiry
    due: tuple[ReminderRule, ...]  # reminders whose date has come, by number


def status_on(
    profile: LifecycleProfile, expires_on: date, today: date, *, cancelled: bool = False
) -> Status:
    days = (today - expires_on).days
    if days <= 0:
        return Status.ACTIVE
    if cancelled or days >= profile.delete_after_days:
        return Status.DELETED
    if days > profile.renew_until_days:
        return Status.REDEMPTION
    if days >= profile.suspend_after_days:
        return Status.SUSPENDED
    return Status.EXPIRED


def plan(
    profile: LifecycleProfile, expires_on: date, today: date, *, cancelled: bool = False
) -> Plan:
    days = (today - expires_on).days
    status = status_on(profile, expires_on, today, cancelled=cancelled)
    served = status in (Status.ACTIVE, Status.EXPIRED) and days < profile.suspend_after_days
    if status is Status.DELETED:
        offer = Offer.NONE
    elif days > profile.renew_until_days:
        offer = Offer.RESTORE
    else:
        offer = Offer.RENEW
    due: tuple[ReminderRule, ...] = ()
    if not cancelled and status is not Status.DELETED:
        due = tuple(r for r in profile.reminders if r.due_on(expires_on) <= today)
    return Plan(status, served, offer, days, due)


def option_reminders_due(
    profile: LifecycleProfile, expires_on: date, today: date
) -> tuple[ReminderRule, ...]:
    """The reminders due on `today` for an option ending on `expires_on`: those
    of the profile up to the expiry day, none once the option's term is past."""
    if today > expires_on:
        return ()
    return tuple(r for r in profile.reminders
                 if r.due_on(expires_on) <= expires_on and r.due_on(expires_on) <= today)


@dataclass(frozen=True, slots=True)
class ReminderDecision:
    send: ReminderRule | None
    skip: tuple[ReminderRule, ...]


def reminders_to_send(due: Sequence[ReminderRule], logged: Iterable[int]) -> ReminderDecision:
    """Of the due reminders, send the latest one not logged yet and skip the
    earlier unlogged ones; nothing is sent again once a later one was logged."""
    done = set(logged)
    latest_logged = max(done, default=0)
    pending = [r for r in due if r.number not in done]
    if not pending:
        return ReminderDecision(None, ())
    newest = pending[-1]
    if newest.number < latest_logged:
        return ReminderDecision(None, tuple(pending))
    return ReminderDecision(newest, tuple(pending[:-1]))


def renewed_expiry(expires_on: date, years: int = 1) -> date:
    """A renewal extends from the previous expiry date, even when paid late."""
    return add_months(expires_on, 12 * years)
