"""The forwarder end to end over real sockets: smtplib -> forwarder -> aiosmtpd sink."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from types import MappingProxyType

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from mx_forwarder.service import ForwarderHandle, start_forwarder
from mx_forwarder.srs import Srs
from storage.db import Database
from storage.models.mail import DeliveryState, MailDelivery
from tests.e2e.mx_support import (
    SRS_DOMAIN,
    SRS_KEY,
    Sink,
    add_alias,
    add_zone,
    config,
    queue_counts,
    send,
    wait_until,
)

MESSAGE = (
    b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=sel; h=from:to:subject;\r\n"
    b"\tbh=abc; b=def\r\n"
    b"From: Alice <alice@sender.test>\r\n"
    b"To: contact@hosted.test\r\n"
    b"Subject:  spaces   kept\r\n"
    b"\r\n"
    b"Body line one\r\n"
    b".leading dot survives\r\n"
    b"caf\xc3\xa9 8-bit\r\n" + b"x" * 998 + b"\r\n"
)


@pytest.fixture
async def sinks() -> AsyncIterator[tuple[Sink, Sink]]:
    dest, back = await Sink().start(), await Sink().start()
    yield dest, back
    await dest.close()
    await back.close()


@pytest.fixture
async def forwarder(db: Database, sinks: tuple[Sink, Sink]) -> AsyncIterator[ForwarderHandle]:
    dest, back = sinks
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    transport = MappingProxyType(
        {
            "dest.test": ("127.0.0.1", dest.port),
            "sender.test": ("127.0.0.1", back.port),
        }
    )
    handle = await start_forwarder(config(transport=transport), db)
    yield handle
    await handle.close()


async def test_body_identical_and_srs_sender(
    forwarder: ForwarderHandle, sinks: tuple[Sink, Sink], db: Database
) -> None:
    dest, _ = sinks
    assert forwarder.port is not None
    refused = await send(forwarder.port, "alice@sender.test", ["Contact@Hosted.test"], MESSAGE)
    assert refused == {}
    (got,) = await dest.wait_for(1)
    assert got.rcpt_tos == ["me@dest.test"]
    assert got.mail_from.startswith("SRS0=") and got.mail_from.endswith(f"@{SRS_DOMAIN}")
    assert Srs(SRS_DOMAIN, (SRS_KEY,)).reverse(got.mail_from) == "alice@sender.test"
    assert got.data.endswith(MESSAGE)  # every original byte, DKIM-signed headers included
    added = got.data[: -len(MESSAGE)]
    assert added.startswith(b"Delivered-To: contact@hosted.test\r\n")
    assert b"Received: from client.test ([127.0.0.1])" in added
    await wait_until(lambda: _empty(db))


async def _empty(db: Database) -> bool:
    return await queue_counts(db) == (0, 0)


async def test_bounce_to_srs_address_returns_to_sender(
    forwarder: ForwarderHandle, sinks: tuple[Sink, Sink]
) -> None:
    dest, back = sinks
    assert forwarder.port is not None
    await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
    (got,) = await dest.wait_for(1)
    bounce = b"From: MAILER-DAEMON@dest.test\r\nSubject: failure\r\n\r\nbounced\r\n"
    await send(forwarder.port, "<>", [got.mail_from], bounce)
    (returned,) = await back.wait_for(1)
    assert returned.rcpt_tos == ["alice@sender.test"]
    assert returned.mail_from == ""
    assert returned.data.endswith(bounce)


async def test_forged_srs_address_refused(forwarder: ForwarderHandle) -> None:
    import smtplib

    assert forwarder.port is not None
    forged = Srs(SRS_DOMAIN, (b"other-key",)).forward("victim@elsewhere.test")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        await send(forwarder.port, "<>", [forged], b"Subject: x\r\n\r\nx\r\n")
    assert info.value.recipients[forged][0] == 550


async def test_retry_after_4xx(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    dest, _ = sinks
    dest.script["me@dest.test"] = [451, 421]
    assert forwarder.port is not None
    await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
    (got,) = await dest.wait_for(1)
    assert got.data.endswith(MESSAGE)
    assert dest.rcpt_attempts["me@dest.test"] == 3
    await wait_until(lambda: _empty(db))


async def test_5xx_bounces_with_one_dsn(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    dest, back = sinks
    dest.script["me@dest.test"] = [550]
    assert forwarder.port is not None
    await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
    (dsn,) = await back.wait_for(1)
    assert dsn.mail_from == "" and dsn.rcpt_tos == ["alice@sender.test"]
    report = email.message_from_bytes(dsn.data)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    text = dsn.data.decode()
    assert "Final-Recipient: rfc822; me@dest.test" in text
    assert "Original-Recipient: rfc822; contact@hosted.test" in text
    assert "Status: 5.1.1" in text and "Action: failed" in text
    await wait_until(lambda: _empty(db))
    assert len(back.messages) == 1 and dest.messages == []


async def test_no_dsn_for_null_sender(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    dest, back = sinks
    dest.script["me@dest.test"] = [550]
    assert forwarder.port is not None
    await send(forwarder.port, "<>", ["contact@hosted.test"], MESSAGE)
    await wait_until(lambda: _bounced_once(dest))
    await wait_until(lambda: _empty(db))
    assert back.messages == []


async def _bounced_once(sink: Sink) -> bool:
    return sink.rcpt_attempts.get("me@dest.test", 0) >= 1


async def test_each_target_tracked_on_its_own(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    dest, back = sinks
    await add_alias(db, "team@hosted.test", "ok@dest.test", "gone@dest.test", "slow@dest.test")
    dest.script["gone@dest.test"] = [550]
    dest.script["slow@dest.test"] = [450]
    assert forwarder.port is not None
    await send(forwarder.port, "alice@sender.test", ["team@hosted.test"], MESSAGE)
    got = await dest.wait_for(2)
    assert sorted(r for m in got for r in m.rcpt_tos) == ["ok@dest.test", "slow@dest.test"]
    (dsn,) = await back.wait_for(1)
    assert b"gone@dest.test" in dsn.data and b"ok@dest.test" not in dsn.data
    await wait_until(lambda: _empty(db))


async def test_duplicate_targets_delivered_once(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    dest, _ = sinks
    await add_alias(db, "other@hosted.test", "me@dest.test")
    assert forwarder.port is not None
    await send(
        forwarder.port, "alice@sender.test", ["contact@hosted.test", "other@hosted.test"], MESSAGE
    )
    await dest.wait_for(1)
    await wait_until(lambda: _empty(db))
    assert len(dest.messages) == 1


async def test_expired_message_bounces(db: Database, sinks: tuple[Sink, Sink]) -> None:
    dest, back = sinks
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    dest.script["me@dest.test"] = [451] * 100
    transport = MappingProxyType(
        {
            "dest.test": ("127.0.0.1", dest.port),
            "sender.test": ("127.0.0.1", back.port),
        }
    )
    handle = await start_forwarder(config(transport=transport, max_queue_age_s=0.5), db)
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
        (dsn,) = await back.wait_for(1)
        assert b"Status: 4.4.7" in dsn.data
        async with db.read() as session:
            states = (await session.execute(select(MailDelivery.state))).scalars().all()
        assert DeliveryState.DEFERRED not in states
    finally:
        await handle.close()


async def test_new_target_confirmed_by_link_before_any_mail(
    db: Database, sinks: tuple[Sink, Sink], forwarder: ForwarderHandle
) -> None:
    import re
    import smtplib

    from tests.integration.test_api_harness import running_api

    dest, _ = sinks
    await add_alias(db, "new@hosted.test", "fresh@dest.test", verified=False)
    (request,) = await dest.wait_for(1)  # the confirmation mail, null sender
    assert request.rcpt_tos == ["fresh@dest.test"] and request.mail_from == ""
    match = re.search(rb"/mail/confirm/([A-Za-z0-9_-]+)", request.data)
    assert match is not None
    assert forwarder.port is not None
    with pytest.raises(smtplib.SMTPRecipientsRefused):  # 450 until confirmed
        await send(forwarder.port, "alice@sender.test", ["new@hosted.test"], MESSAGE)
    async with running_api(db) as api:  # the link leads to the zone API's public page
        link = f"/api/v1/mail/confirm/{match.group(1).decode()}"
        shown = await api.client.call("GET", link)
        assert shown.status == 200 and shown.body["target"] == "fresh@dest.test"
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # looking is not confirming
            await send(forwarder.port, "alice@sender.test", ["new@hosted.test"], MESSAGE)
        confirmed = await api.client.call("POST", link)
        assert confirmed.status == 200 and confirmed.body["state"] == "verified"
    await send(forwarder.port, "alice@sender.test", ["new@hosted.test"], MESSAGE)
    messages = await dest.wait_for(2)
    assert messages[1].rcpt_tos == ["fresh@dest.test"] and messages[1].data.endswith(MESSAGE)


async def test_one_connection_serves_several_messages(
    forwarder: ForwarderHandle, sinks: tuple[Sink, Sink], db: Database
) -> None:
    dest, _ = sinks
    assert forwarder.port is not None
    for i in range(5):
        await send(forwarder.port, "alice@sender.test", ["contact@hosted.test"],
                   b"Subject: %d\r\n\r\nbody\r\n" % i)
        await dest.wait_for(i + 1)
    assert dest.connections == 1  # connect, EHLO and STARTTLS paid once
    await wait_until(lambda: _empty(db))


async def test_connection_closed_by_destination_is_replaced(db: Database) -> None:
    dest = Sink(idle_timeout_s=0.3)
    await dest.start()
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    transport = MappingProxyType({"dest.test": ("127.0.0.1", dest.port)})
    handle = await start_forwarder(config(transport=transport), db)
    deferred = REGISTRY.get_sample_value("zonehost_mx_deferred_total")
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
        await dest.wait_for(1)
        await asyncio.sleep(0.6)  # the sink hangs up on the idle cached connection
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
        await dest.wait_for(2)
        assert dest.connections == 2
        await wait_until(lambda: _empty(db))
        # no delivery was deferred on the way
        assert REGISTRY.get_sample_value("zonehost_mx_deferred_total") == deferred
    finally:
        await handle.close()
        await dest.close()
