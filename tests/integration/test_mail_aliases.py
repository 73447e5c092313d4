"""storage.aliases on a real store: lookup outcomes, quota, targets, confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from storage import aliases
from storage.aliases import RcptOutcome, parse_address
from storage.db import Database
from storage.models import AuditEntry, Zone, ZoneStatus
from storage.models.mail import MailAliasTarget, TargetState


async def add_zone(db: Database, name: str) -> None:
    async with db.write() as session:
        session.add(Zone(name=f"{name}.", serial=1, soa_mname="ns1.example.net.",
                         soa_rname="hostmaster.example.net."))


async def lookup(db: Database, address: str) -> aliases.AliasLookup:
    async with db.read() as session:
        return await aliases.lookup_alias(session, parse_address(address))


async def test_lookup_outcomes(db: Database) -> None:
    await add_zone(db, "example.com")
    await add_zone(db, "nomail.example")
    assert (await lookup(db, "a@elsewhere.test")).outcome is RcptOutcome.NOT_HOSTED
    assert (await lookup(db, "a@example.com")).outcome is RcptOutcome.NO_MAIL_SERVICE
    async with db.write() as session:
        await aliases.add_alias(session, "Contact@Example.COM", ["me@dest.test"], verified=True)
        await aliases.add_alias(session, "pending@example.com", ["other@dest.test"])
    found = await lookup(db, "CONTACT@example.com")
    assert found.outcome is RcptOutcome.ACCEPT
    assert found.targets == ("me@dest.test",)
    tagged = await lookup(db, "contact+news@example.com")
    assert tagged.outcome is RcptOutcome.ACCEPT and str(tagged.alias) == "contact@example.com"
    assert (await lookup(db, "nobody@example.com")).outcome is RcptOutcome.UNKNOWN_ALIAS
    assert (await lookup(db, "pending@example.com")).outcome is RcptOutcome.UNCONFIRMED
    async with db.write() as session:
        await session.execute(update(Zone).where(Zone.name == "example.com.")
                              .values(status=ZoneStatus.SUSPENDED))
    assert (await lookup(db, "contact@example.com")).outcome is RcptOutcome.SUSPENDED
    async with db.write() as session:
        await session.execute(update(Zone).where(Zone.name == "example.com.")
                              .values(status=ZoneStatus.ACTIVE))
        await aliases.set_mail_service(session, "example.com", enabled=False)
    assert (await lookup(db, "contact@example.com")).outcome is RcptOutcome.NO_MAIL_SERVICE


async def test_quota_five_then_fifty_with_pack(db: Database) -> None:
    await add_zone(db, "example.com")
    async with db.write() as session:
        for i in range(5):
            await aliases.add_alias(session, f"a{i}@example.com", ["t@dest.test"])
    with pytest.raises(aliases.QuotaExceeded) as info:
        async with db.write() as session:
            await aliases.add_alias(session, "a5@example.com", ["t@dest.test"])
    assert info.value.limit == 5
    async with db.write() as session:
        # more targets on an existing alias do not count against the quota
        await aliases.add_alias(session, "a0@example.com", ["u@dest.test"])
        service = await aliases.set_mail_service(session, "example.com", redirect_pack=True)
    assert service.quota == 50 and service.alias_count == 5
    async with db.write() as session:
        for i in range(5, 50):
            await aliases.add_alias(session, f"a{i}@example.com", ["t@dest.test"])
    with pytest.raises(aliases.QuotaExceeded):
        async with db.write() as session:
            await aliases.add_alias(session, "a50@example.com", ["t@dest.test"])
    async with db.read() as session:
        listed = await aliases.list_aliases(session, "example.com")
    assert len(listed) == 50
    a0 = next(a for a in listed if a.address.local == "a0")
    assert [t.address for t in a0.targets] == ["t@dest.test", "u@dest.test"]


async def test_add_requires_hosted_domain_and_valid_addresses(db: Database) -> None:
    await add_zone(db, "example.com")
    async with db.write() as session:
        with pytest.raises(aliases.DomainNotHosted):
            await aliases.add_alias(session, "a@other.test", ["t@dest.test"])
        with pytest.raises(aliases.InvalidAddress):
            await aliases.add_alias(session, "a@example.com", ["t%x@dest.test"])
        with pytest.raises(aliases.AliasLoop):
            await aliases.add_alias(session, "a@example.com", ["A@example.com"])


async def test_remove_alias_and_targets(db: Database) -> None:
    await add_zone(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test", "u@dest.test"],
                                verified=True)
        await aliases.remove_target(session, "a@example.com", "t@dest.test")
    assert (await lookup(db, "a@example.com")).targets == ("u@dest.test",)
    async with db.write() as session:
        await aliases.remove_target(session, "a@example.com", "u@dest.test")
    assert (await lookup(db, "a@example.com")).outcome is RcptOutcome.UNKNOWN_ALIAS
    async with db.write() as session:
        with pytest.raises(aliases.AliasNotFound):
            await aliases.remove_alias(session, "a@example.com")
        await aliases.add_alias(session, "b@example.com", ["t@dest.test"])
        await aliases.remove_alias(session, "b@example.com")
        audit = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert "alias_add" in audit and "alias_remove" in audit


async def test_confirmation_token_flow(db: Database) -> None:
    await add_zone(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"])
        requests = await aliases.claim_confirmations(session)
        assert await aliases.claim_confirmations(session) == []  # each is claimed once
    assert [(r.alias, r.target) for r in requests] == [("a@example.com", "t@dest.test")]
    async with db.write() as session:
        with pytest.raises(aliases.InvalidToken):
            await aliases.confirm_target(session, "not-the-token")
        info = await aliases.confirm_target(session, requests[0].token)
    assert info.state is TargetState.VERIFIED
    assert (await lookup(db, "a@example.com")).targets == ("t@dest.test",)
    async with db.write() as session:
        with pytest.raises(aliases.InvalidToken):  # used once only
            await aliases.confirm_target(session, requests[0].token)


async def test_expired_token_and_resend(db: Database) -> None:
    await add_zone(db, "example.com")
    async with db.write() as session:
        await aliases.add_alias(session, "a@example.com", ["t@dest.test"])
        (old,) = await aliases.claim_confirmations(session)
        await session.execute(
            update(MailAliasTarget).values(token_sent_at=datetime.now(UTC) - timedelta(days=8))
        )
    async with db.write() as session:
        with pytest.raises(aliases.InvalidToken):
            await aliases.confirm_target(session, old.token)
        await aliases.resend_confirmation(session, "a@example.com", "t@dest.test")
        (new,) = await aliases.claim_confirmations(session)
    async with db.write() as session:
        with pytest.raises(aliases.InvalidToken):
            await aliases.confirm_target(session, old.token)
        await aliases.confirm_target(session, new.token)
