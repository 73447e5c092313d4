"""serve(): IPv4 and IPv6 listeners, one port for UDP and TCP, clean shutdown."""

from __future__ import annotations

import asyncio
import socket

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from nameserver.index import ZoneTable
from nameserver.options import NameserverOptions
from nameserver.server import serve
from tests.unit.nameserver.zones import all_snapshots


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


async def test_ipv4_and_ipv6_on_udp_and_tcp() -> None:
    if not _has_ipv6_loopback():
        pytest.skip("no IPv6 loopback here")
    table = ZoneTable.from_snapshots(all_snapshots())
    running = await serve(table, [("127.0.0.1", 0), ("::1", 0)])
    try:
        for host, port in running.addresses:
            query = dns.message.make_query("www.zh.test", "A")
            udp = await dns.asyncquery.udp(query, host, port=port, timeout=2)
            tcp = await dns.asyncquery.tcp(query, host, port=port, timeout=2)
            assert udp.answer and tcp.answer
            assert udp.rcode() == tcp.rcode() == dns.rcode.NOERROR
    finally:
        running.close()
        await running.wait_closed()
    with pytest.raises(OSError):
        await dns.asyncquery.tcp(
            dns.message.make_query("www.zh.test", "A"), "127.0.0.1",
            port=running.addresses[0][1], timeout=1,
        )


async def test_reuse_port_lets_two_servers_share_an_address() -> None:
    table = ZoneTable.from_snapshots(all_snapshots())
    options = NameserverOptions(reuse_port=True)
    first = await serve(table, [("127.0.0.1", 0)], options)
    port = first.addresses[0][1]
    second = await serve(table, [("127.0.0.1", port)], options)
    try:
        for _ in range(4):
            reply = await dns.asyncquery.udp(
                dns.message.make_query("www.zh.test", "A"), "127.0.0.1", port=port, timeout=2
            )
            assert reply.answer
    finally:
        for running in (first, second):
            running.close()
            await running.wait_closed()
    await asyncio.sleep(0)
