"""Delivery's MX and address lookups go through the process's DNS cache:
`zonehost nameserver` serves the target domains behind a counting UDP
proxy, so the tests see each query that leaves the forwarder. Several
messages to one domain cost one MX query within its TTL; a changed MX is
followed once the TTL has run out; a resolver that does not answer defers
the delivery (never bounces it) and is asked once per failure TTL, not once
per attempt; RFC 5321 5.1 (no MX: the implicit MX on the A record; no such
domain, or a null MX: a bounce) as before."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import dns.asyncquery
import dns.exception
import dns.message
import dns.rdatatype
import pytest
from sqlalchemy import select

from mx_forwarder.delivery import MxResolver, NoRoute
from mx_forwarder.dnscache import DnsCache
from mx_forwarder.service import start_forwarder
from storage.db import Database
from storage.models.mail import DeliveryState, MailDelivery
from tests.e2e.mx_support import (
    Nameserver,
    Sink,
    add_alias,
    config,
    import_zones,
    send,
    wait_until,
    zonehost_nameserver,
)
from tests.e2e.test_mx_authres import Clock, reimport

DEST = "@ 300 IN MX 10 mx.dest.test.\nmx 300 IN A 127.0.0.1\n"
ZONES = {
    "hosted.test": "@ 300 IN MX 10 mx.zonehost.test.\n",
    "dest.test": DEST,
    "plain.test": "@ 300 IN A 127.0.0.1\n",  # no MX: the implicit MX
    "nullmx.test": "@ 300 IN MX 0 .\n",
}
MESSAGE = b"From: alice@sender.test\r\nTo: contact@hosted.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class CountingProxy(asyncio.DatagramProtocol):
    """A UDP 'resolver' in front of the nameserver: counts each query by
    (name, type) and relays it, or swallows it while `silent`."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.queries: collections.Counter[tuple[str, str]] = collections.Counter()
        self.silent = False
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        self.queries[(question.name.to_text(True).lower(),
                      dns.rdatatype.to_text(question.rdtype))] += 1
        if not self.silent:
            task = asyncio.create_task(self._relay(query, addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _relay(self, query: dns.message.Message, addr: tuple[str, int]) -> None:
        try:
            reply = await dns.asyncquery.udp(query, "127.0.0.1", port=self.upstream, timeout=2)
        except (dns.exception.DNSException, OSError):
            return
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    await import_zones(cli_env, tmp_path, ZONES)
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    async with zonehost_nameserver(cli_env) as server:
        yield server


@pytest.fixture
async def proxy(nameserver: Nameserver) -> AsyncIterator[CountingProxy]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: CountingProxy(nameserver.port), local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()
    for task in list(protocol.tasks):
        task.cancel()


async def states(db: Database) -> list[DeliveryState]:
    async with db.read() as session:
        return list((await session.scalars(select(MailDelivery.state)
                                           .order_by(MailDelivery.id))).all())


async def test_messages_to_one_domain_cost_one_mx_query(db: Database,
                                                        proxy: CountingProxy) -> None:
    sink = await Sink().start()
    handle = await start_forwarder(config(resolver=("127.0.0.1", proxy.port),
                                          delivery_port=sink.port, dns_timeout_s=2.0), db)
    try:
        assert handle.port is not None
        for count in range(1, 4):  # one after another: the answers come from the cache
            await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)
            await sink.wait_for(count)
        # and several at once: one lookup in flight serves them all
        await asyncio.gather(*(send(handle.port, "alice@sender.test", ["contact@hosted.test"],
                                    MESSAGE) for _ in range(4)))
        got = await sink.wait_for(7)
    finally:
        await handle.close()
        await sink.close()
    assert all(m.rcpt_tos == ["me@dest.test"] for m in got)
    assert proxy.queries[("dest.test", "MX")] == 1
    assert proxy.queries[("mx.dest.test", "A")] == 1


async def test_a_changed_mx_is_followed_once_its_ttl_has_run_out(
        proxy: CountingProxy, nameserver: Nameserver, cli_env: dict[str, str],
        tmp_path: Path) -> None:
    clock = Clock()
    mx = MxResolver(DnsCache(("127.0.0.1", proxy.port), 2.0, clock=clock), {}, 25)
    assert await mx.route("dest.test") == [("mx.dest.test", "127.0.0.1", 25)]
    await reimport(cli_env, tmp_path, "dest.test",
                   "@ 300 IN MX 10 mx2.dest.test.\nmx2 300 IN A 127.0.0.2\n", nameserver,
                   "mx2.dest.test.", "A")
    clock.now += 299
    assert await mx.route("DEST.test.") == [("mx.dest.test", "127.0.0.1", 25)]  # within the TTL
    assert proxy.queries[("dest.test", "MX")] == 1
    clock.now += 1
    assert await mx.route("dest.test") == [("mx2.dest.test", "127.0.0.2", 25)]
    assert proxy.queries[("dest.test", "MX")] == 2


async def test_rfc5321_routes_through_the_cache(proxy: CountingProxy) -> None:
    mx = MxResolver(DnsCache(("127.0.0.1", proxy.port), 2.0), {}, 25)
    for _ in range(2):
        assert await mx.route("plain.test") == [("plain.test", "127.0.0.1", 25)]  # implicit MX
        for domain, status in (("nowhere.dest.test", "5.1.2"), ("nullmx.test", "5.1.10")):
            with pytest.raises(NoRoute) as refused:
                await mx.route(domain)
            assert (refused.value.permanent, refused.value.status) == (True, status)
    # the negative answers are kept too (the SOA's negative TTL, RFC 2308)
    assert proxy.queries[("plain.test", "MX")] == 1
    assert proxy.queries[("nowhere.dest.test", "MX")] == 1


async def test_a_silent_resolver_defers_and_is_asked_once_per_failure_ttl(
        db: Database, proxy: CountingProxy) -> None:
    proxy.silent = True
    sink = await Sink().start()
    handle = await start_forwarder(config(resolver=("127.0.0.1", proxy.port),
                                          delivery_port=sink.port, dns_timeout_s=0.3), db)
    try:
        assert handle.port is not None
        await send(handle.port, "alice@sender.test", ["contact@hosted.test"], MESSAGE)

        async def attempts() -> int:
            async with db.read() as session:
                return int(await session.scalar(select(MailDelivery.attempts)) or 0)

        async def retried() -> bool:
            return await attempts() >= 3

        await wait_until(retried)
        assert await states(db) == [DeliveryState.DEFERRED]  # deferred, not bounced
        async with db.read() as session:  # and the queue says why
            error = await session.scalar(select(MailDelivery.last_error))
        assert error is not None and "MX lookup for dest.test failed: " in error
        assert "timed out" in error.lower() or "lifetime" in error.lower(), error
        asked = proxy.queries[("dest.test", "MX")]
        # a retry within the failure TTL (5 s; the retries come every 0.2-1 s) is told
        # from the cache: fewer queries than attempts
        assert 1 <= asked < await attempts()
        proxy.silent = False  # the resolver is back: delivered once the failure expires
        (got,) = await sink.wait_for(1, timeout_s=20)
        assert got.rcpt_tos == ["me@dest.test"]
        assert proxy.queries[("dest.test", "MX")] > asked
    finally:
        await handle.close()
        await sink.close()
