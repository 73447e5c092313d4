"""Edits committed to the store are served by a running nameserver process
without a restart: RRset edits, new zones, suspension, deletion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from storage import zones as store
from storage.db import Database
from storage.models import ZoneStatus
from storage.nsstatus import SyncStatus, change_status
from storage.zones import OPERATOR
from tests.e2e.nameserver_process import query, running_nameserver
from tests.integration.zonedata import SOA, drop, origin, put, rrset


def wait_for(
    port: int, qname: str, qtype: str, ok: Callable[[dns.message.Message], bool]
) -> dns.message.Message:
    deadline = time.monotonic() + 15
    while True:
        reply = query(port, qname, qtype)
        if ok(reply) or time.monotonic() > deadline:
            return reply
        time.sleep(0.02)


def addresses(reply: dns.message.Message) -> set[str]:
    return {r.to_text() for rrset in reply.answer if rrset.rdtype == dns.rdatatype.A for r in rrset}


async def _create(db: Database, name: str) -> int:
    async with db.write() as session:
        result = await store.create_zone(
            session,
            origin(name),
            SOA,
            OPERATOR,
            rrsets=[
                rrset(name, "@", "NS", "ns1.example.net."),
                rrset(name, "www", "A", "192.0.2.1"),
            ],
        )
    return result.change_id


async def test_edits_are_served_without_restart(db: Database, cli_env: dict[str, str]) -> None:
    await _create(db, "live.example")
    with running_nameserver(cli_env, "live.example.") as port:
        assert addresses(query(port, "www.live.example.")) == {"192.0.2.1"}
        serial_before = query(port, "live.example.", "SOA").answer[0][0].serial

        async with db.write() as session:
            edit = await store.apply_changes(
                session,
                "live.example.",
                [
                    put("live.example", "www", "A", "192.0.2.7", "192.0.2.8"),
                    put("live.example", "new", "AAAA", "2001:db8::1"),
                ],
                OPERATOR,
            )
        reply = wait_for(
            port, "www.live.example.", "A", lambda r: addresses(r) == {"192.0.2.7", "192.0.2.8"}
        )
        assert addresses(reply) == {"192.0.2.7", "192.0.2.8"}
        assert query(port, "new.live.example.", "AAAA").answer[0][0].to_text() == "2001:db8::1"
        assert (
            query(port, "live.example.", "SOA").answer[0][0].serial == edit.serial > serial_before
        )

        # The nameserver reports what it serves: the change becomes INSYNC.
        deadline = time.monotonic() + 15
        status = SyncStatus.PENDING
        while status is SyncStatus.PENDING and time.monotonic() < deadline:
            async with db.read() as session:
                status = await change_status(session, edit.change_id)
            await asyncio.sleep(0.05)
        assert status is SyncStatus.INSYNC

        async with db.write() as session:
            await store.apply_changes(
                session, "live.example.", [drop("live.example", "www", "A")], OPERATOR
            )
        reply = wait_for(port, "www.live.example.", "A", lambda r: not r.answer)
        assert reply.rcode() == dns.rcode.NXDOMAIN and not reply.answer
        assert reply.authority and reply.authority[0].rdtype == dns.rdatatype.SOA


async def test_zone_lifecycle_is_followed(db: Database, cli_env: dict[str, str]) -> None:
    await _create(db, "first.example")
    with running_nameserver(cli_env, "first.example.") as port:
        assert query(port, "www.second.example.").rcode() == dns.rcode.REFUSED
        await _create(db, "second.example")
        reply = wait_for(port, "www.second.example.", "A", lambda r: r.rcode() == dns.rcode.NOERROR)
        assert addresses(reply) == {"192.0.2.1"} and reply.flags & dns.flags.AA

        async with db.write() as session:
            await store.set_zone_status(session, "second.example.", ZoneStatus.SUSPENDED, OPERATOR)
        reply = wait_for(port, "www.second.example.", "A", lambda r: r.rcode() == dns.rcode.REFUSED)
        assert reply.rcode() == dns.rcode.REFUSED
        async with db.write() as session:
            await store.set_zone_status(session, "second.example.", ZoneStatus.ACTIVE, OPERATOR)
        reply = wait_for(port, "www.second.example.", "A", lambda r: r.rcode() == dns.rcode.NOERROR)
        assert addresses(reply) == {"192.0.2.1"}

        async with db.write() as session:
            await store.delete_zone(session, "second.example.", OPERATOR)
        reply = wait_for(port, "www.second.example.", "A", lambda r: r.rcode() == dns.rcode.REFUSED)
        assert reply.rcode() == dns.rcode.REFUSED
        assert addresses(query(port, "www.first.example.")) == {"192.0.2.1"}
