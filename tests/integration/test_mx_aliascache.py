"""The forwarder's alias cache on a real store: hits, and every kind of change
reaching the RCPT answer through the zone feed or the mail feed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.name
from sqlalchemy import func, select, update

from mx_forwarder.aliascache import AliasCache
from mx_forwarder.policy import LOOKUP_FAILED, StorePolicy
from mx_forwarder.srs import Srs
from storage import aliases
from storage import zones as store
from storage.aliases import FeedPosition, RcptOutcome, parse_address
from storage.db import Database, connect
from storage.models import ZoneStatus
from storage.models.mail import MailAliasTarget, MailChange

SOA = store.SoaFields("ns1.example.net.", "hostmaster.example.net.")


async def create(db: Database, name: str) -> None:
    async with db.write() as session:
        await store.create_zone(session, dns.name.from_text(name), SOA, store.OPERATOR)


async def outcome(cache: AliasCache, address: str) -> RcptOutcome:
    return (await cache.lookup(parse_address(address))).outcome


async def test_repeated_lookups_hit_the_cache(db: Database) -> None:
    await create(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"], verified=True)
    cache = AliasCache(db, check_s=3600)
    assert (await cache.lookup(parse_address("a@example.com"))).targets == ("t@dest.test",)
    for local in ("a", "b", "c", "a+tag"):  # unknown local parts need no query either
        await cache.lookup(parse_address(f"{local}@example.com"))
    assert (cache.misses, cache.hits) == (1, 4)
    assert await outcome(cache, "b@example.com") is RcptOutcome.UNKNOWN_ALIAS
    assert await outcome(cache, "a+tag@example.com") is RcptOutcome.ACCEPT


async def test_concurrent_lookups_share_one_load(db: Database) -> None:
    await create(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"], verified=True)
    cache = AliasCache(db, check_s=3600)
    results = await asyncio.gather(*(cache.lookup(parse_address("a@example.com"))
                                     for _ in range(20)))
    assert {r.outcome for r in results} == {RcptOutcome.ACCEPT}
    assert len(cache._entries) == 1 and not cache._loads


async def test_every_change_is_seen_at_once_with_check_zero(db: Database) -> None:
    cache = AliasCache(db, check_s=0)
    assert await outcome(cache, "a@example.com") is RcptOutcome.NOT_HOSTED
    await create(db, "example.com")  # the zone feed names it
    assert await outcome(cache, "a@example.com") is RcptOutcome.NO_MAIL_SERVICE
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"])
    assert await outcome(cache, "a@example.com") is RcptOutcome.UNCONFIRMED
    async with db.write() as session:
        (request,) = await aliases.claim_confirmations(session)
    async with db.write() as session:
        await aliases.confirm_target(session, request.token)
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT
    async with db.write() as session:
        await store.set_zone_status(session, "example.com.", ZoneStatus.SUSPENDED,
                                    store.OPERATOR)
    assert await outcome(cache, "a@example.com") is RcptOutcome.SUSPENDED
    async with db.write() as session:
        await store.set_zone_status(session, "example.com.", ZoneStatus.ACTIVE, store.OPERATOR)
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT
    async with db.write() as session:
        await aliases.set_mail_service(session, "example.com", enabled=False)
    assert await outcome(cache, "a@example.com") is RcptOutcome.NO_MAIL_SERVICE
    async with db.write() as session:
        await aliases.set_mail_service(session, "example.com", enabled=True)
        await aliases.add_alias(session, "a@example.com", ["u@dest.test"], verified=True)
    assert (await cache.lookup(parse_address("a@example.com"))).targets == (
        "t@dest.test", "u@dest.test")
    async with db.write() as session:
        await aliases.remove_target(session, "a@example.com", "t@dest.test")
    assert (await cache.lookup(parse_address("a@example.com"))).targets == ("u@dest.test",)
    async with db.write() as session:
        await aliases.remove_alias(session, "a@example.com")
    assert await outcome(cache, "a@example.com") is RcptOutcome.UNKNOWN_ALIAS
    async with db.write() as session:
        await store.delete_zone(session, "example.com.", store.OPERATOR)
    assert await outcome(cache, "a@example.com") is RcptOutcome.NOT_HOSTED


async def test_a_change_elsewhere_keeps_other_domains_cached(db: Database) -> None:
    await create(db, "one.test")
    await create(db, "two.test")
    cache = AliasCache(db, check_s=0)
    await outcome(cache, "a@one.test")
    await outcome(cache, "a@two.test")
    async with db.write() as session:
        await aliases.add_alias(session, "a@two.test", ["t@dest.test"], verified=True)
    misses = cache.misses
    assert await outcome(cache, "a@one.test") is RcptOutcome.NO_MAIL_SERVICE
    assert cache.misses == misses  # still cached
    assert await outcome(cache, "a@two.test") is RcptOutcome.ACCEPT
    assert cache.misses == misses + 1


async def test_staleness_is_bounded_by_check_interval(db: Database) -> None:
    await create(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"], verified=True)
    cache = AliasCache(db, check_s=0.3)
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT
    async with db.write() as session:
        await store.set_zone_status(session, "example.com.", ZoneStatus.SUSPENDED,
                                    store.OPERATOR)
    await asyncio.sleep(0.35)
    assert await outcome(cache, "a@example.com") is RcptOutcome.SUSPENDED


async def test_edits_without_a_feed_row_expire_with_max_age(db: Database) -> None:
    await create(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"])
    cache = AliasCache(db, check_s=0, max_age_s=0.2)
    assert await outcome(cache, "a@example.com") is RcptOutcome.UNCONFIRMED
    async with db.write() as session:  # behind storage's back: no feed row
        await session.execute(update(MailAliasTarget).values(state="verified"))
    assert await outcome(cache, "a@example.com") is RcptOutcome.UNCONFIRMED
    await asyncio.sleep(0.25)
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT


async def test_store_unusable_gives_a_temporary_failure(tmp_path: Path) -> None:
    empty = connect(f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}")  # no schema
    try:
        policy = StorePolicy(AliasCache(empty, check_s=0), Srs("fwd.test", (b"k",)))
        assert await policy.check_rcpt("a@example.com") == LOOKUP_FAILED
    finally:
        await empty.close()


async def test_changed_domains_overflow_and_prune(db: Database) -> None:
    await create(db, "example.com")
    async with db.read() as session:
        start = await aliases.feed_position(session)
    async with db.write() as session:
        for i in range(4):
            await aliases.add_alias(session, f"a{i}@example.com", ["t@dest.test"])
    async with db.read() as session:
        few = await aliases.changed_domains(session, start)
        many = await aliases.changed_domains(session, start, limit=3)
    assert few.domains == {"example.com"} and not few.everything
    assert few.position.mail_change_id == start.mail_change_id + 4
    assert many.everything and many.position == few.position
    async with db.write() as session:
        await session.execute(update(MailChange).values(
            created_at=datetime.now(UTC) - timedelta(days=2)))
        assert await aliases.prune_changes(session, timedelta(days=1)) == 3
    async with db.read() as session:
        left = await session.scalar(select(func.max(MailChange.id)))
        assert left == few.position.mail_change_id  # the newest stays: ids never go back
        assert await aliases.changed_domains(session, FeedPosition(
            few.position.zone_change_id, few.position.mail_change_id)) == aliases.ChangedDomains(
            few.position, frozenset())


async def test_steady_mail_reads_ahead_without_waiting(db: Database) -> None:
    await create(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"], verified=True)
    cache = AliasCache(db, check_s=0.4)
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT
    async with db.write() as session:
        await store.set_zone_status(session, "example.com.", ZoneStatus.SUSPENDED,
                                    store.OPERATOR)
    await asyncio.sleep(0.25)  # past half the allowance: answered at once, read started
    assert await outcome(cache, "a@example.com") is RcptOutcome.ACCEPT
    assert cache._check is not None
    await cache._check
    assert await outcome(cache, "a@example.com") is RcptOutcome.SUSPENDED
