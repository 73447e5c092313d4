"""The lifecycle profiles as tables: (days from expiry) -> status, offer, reminders."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from billing.lifecycle import (
    ICANN_ERRP,
    STANDARD,
    LifecycleError,
    LifecycleProfile,
    Offer,
    Offset,
    Recipient,
    ReminderRule,
    Status,
    add_months,
    plan,
    reminders_to_send,
    renewed_expiry,
)

EXPIRY = date(2027, 3, 31)


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2027, 3, 31), -1, date(2027, 2, 28)),
        (date(2028, 3, 31), -1, date(2028, 2, 29)),
        (date(2027, 3, 31), -2, date(2027, 1, 31)),
        (date(2027, 1, 15), -2, date(2026, 11, 15)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2027, 12, 31), 1, date(2028, 1, 31)),
    ],
)
def test_add_months_clamps_to_the_month_end(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("days", "status", "served", "offer"),
    [
        (-60, Status.ACTIVE, True, Offer.RENEW),
        (0, Status.ACTIVE, True, Offer.RENEW),
        (1, Status.EXPIRED, True, Offer.RENEW),
        (4, Status.EXPIRED, True, Offer.RENEW),
        (5, Status.SUSPENDED, False, Offer.RENEW),
        (20, Status.SUSPENDED, False, Offer.RENEW),
        (30, Status.SUSPENDED, False, Offer.RENEW),
        (31, Status.REDEMPTION, False, Offer.RESTORE),
        (45, Status.REDEMPTION, False, Offer.RESTORE),
        (60, Status.REDEMPTION, False, Offer.RESTORE),
        (61, Status.DELETED, False, Offer.NONE),
        (400, Status.DELETED, False, Offer.NONE),
    ],
)
def test_standard_profile_by_day(days: int, status: Status, served: bool, offer: Offer) -> None:
    result = plan(STANDARD, EXPIRY, EXPIRY + timedelta(days=days))
    assert (result.status, result.zone_served, result.offer) == (status, served, offer)
    assert result.days_after_expiry == days


@pytest.mark.parametrize(
    ("day", "numbers"),
    [
        (date(2027, 1, 30), ()),
        (date(2027, 1, 31), (1,)),  # two months before 31 March
        (date(2027, 2, 28), (1, 2)),  # one month before, clamped
        (date(2027, 3, 26), (1, 2, 3)),  # five days before
        (date(2027, 3, 31), (1, 2, 3, 4)),  # the expiry day
        (date(2027, 4, 3), (1, 2, 3, 4, 5)),  # expiry + 3
        (date(2027, 5, 30), (1, 2, 3, 4, 5)),  # expiry + 60
        (date(2027, 5, 31), ()),  # expiry + 61, deleted: nothing more to say
    ],
)
def test_standard_reminders_fall_due(day: date, numbers: tuple[int, ...]) -> None:
    assert tuple(r.number for r in plan(STANDARD, EXPIRY, day).due) == numbers


def test_standard_recipients() -> None:
    billing_only = (Recipient.BILLING,)
    both = (Recipient.BILLING, Recipient.OWNER)
    assert [r.recipients for r in STANDARD.reminders] == [
        billing_only, billing_only, both, both, both,
    ]


def test_a_cancelled_domain_gets_no_reminder_and_is_deleted_after_expiry() -> None:
    before = plan(STANDARD, EXPIRY, EXPIRY - timedelta(days=5), cancelled=True)
    assert before.status is Status.ACTIVE and before.due == ()
    after = plan(STANDARD, EXPIRY, EXPIRY + timedelta(days=1), cancelled=True)
    assert after.status is Status.DELETED and not after.zone_served


@pytest.mark.parametrize(
    ("days", "status", "served"),
    [(0, Status.ACTIVE, True), (1, Status.SUSPENDED, False), (30, Status.SUSPENDED, False),
     (31, Status.REDEMPTION, False), (61, Status.DELETED, False)],
)
def test_errp_profile_cuts_dns_right_after_expiry(days: int, status: Status, served: bool) -> None:
    result = plan(ICANN_ERRP, EXPIRY, EXPIRY + timedelta(days=days))
    assert (result.status, result.zone_served) == (status, served)


def test_errp_notifies_the_owner_a_month_a_week_before_and_within_five_days_after() -> None:
    dues = [(r.due_on(EXPIRY) - EXPIRY).days for r in ICANN_ERRP.reminders]
    assert dues == [-31, -7, 3]
    assert all(Recipient.OWNER in r.recipients for r in ICANN_ERRP.reminders)
    assert ICANN_ERRP.delete_after_days - ICANN_ERRP.suspend_after_days >= 8


def test_reminders_to_send_sends_the_latest_due_and_skips_the_missed_ones() -> None:
    due = STANDARD.reminders[:4]
    decision = reminders_to_send(due, logged=[1])
    assert decision.send is not None and decision.send.number == 4
    assert [r.number for r in decision.skip] == [2, 3]
    assert reminders_to_send(due, logged=[1, 2, 3, 4]) == reminders_to_send((), [])
    # A late-logged earlier reminder never goes out after a later one.
    late = reminders_to_send(due, logged=[4])
    assert late.send is None and [r.number for r in late.skip] == [1, 2, 3]


def test_renewal_extends_from_the_previous_expiry() -> None:
    assert renewed_expiry(date(2028, 2, 29)) == date(2029, 2, 28)
    assert renewed_expiry(EXPIRY, 2) == date(2029, 3, 31)


@pytest.mark.parametrize("text", ["1:-2m:billing", "5:+3d:billing+owner", "4:0d:admin"])
def test_reminder_rules_round_trip(text: str) -> None:
    assert ReminderRule.from_text(text).to_text() == text


@pytest.mark.parametrize("text", ["x:-2m:billing", "1:-2y:billing", "1:-2m:nobody", "1:-2m:"])
def test_bad_reminder_rules_are_refused(text: str) -> None:
    with pytest.raises(LifecycleError):
        ReminderRule.from_text(text)


def test_inconsistent_profiles_are_refused_with_every_reason() -> None:
    with pytest.raises(LifecycleError) as info:
        LifecycleProfile(
            name="bad",
            reminders=(ReminderRule(2, Offset(days=-1), (Recipient.OWNER,)),
                       ReminderRule(1, Offset(days=-5), (Recipient.OWNER,))),
            suspend_after_days=55, renew_until_days=40, restore_until_days=30,
            min_dns_cut_days=8,
        )
    message = str(info.value)
    assert "listed by number" in message
    assert "restore period cannot end before" in message
    assert "at least 8 days before deletion" in message


@pytest.mark.parametrize(
    ("profile", "today", "numbers"),
    [
        (STANDARD, date(2027, 1, 30), []),
        (STANDARD, date(2027, 1, 31), [1]),  # two months before the 31 March
        (STANDARD, date(2027, 2, 28), [1, 2]),  # one month before, clamped to February
        (STANDARD, date(2027, 3, 26), [1, 2, 3]),
        (STANDARD, date(2027, 3, 31), [1, 2, 3, 4]),  # the expiry day
        (STANDARD, date(2027, 4, 3), []),  # no "+3d" reminder: the option just ended
        (ICANN_ERRP, date(2027, 3, 24), [1, 2]),
        (ICANN_ERRP, date(2027, 4, 3), []),
    ],
)
def test_an_option_gets_the_reminders_up_to_its_own_expiry_day(
    profile: LifecycleProfile, today: date, numbers: list[int]
) -> None:
    from billing.lifecycle import option_reminders_due

    assert [r.number for r in option_reminders_due(profile, EXPIRY, today)] == numbers
