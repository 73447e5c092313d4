"""A primary for the transfer tests: zones from a real store, kept current by
the feed follower, AXFR/IXFR/NOTIFY wired as zonehost wires them.

The server runs on its own event loop in a background thread, so tests can
use blocking dnspython against it and write to the store from their own loop
(`store()` runs a coroutine with a Database of its own).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype

from nameserver.feed import FeedFollower, FeedOptions, load_everything
from nameserver.index import ZoneTable
from nameserver.notify import Notifier, NotifyOptions, NotifyResponder
from nameserver.options import NameserverOptions
from nameserver.server import RunningNameserver, serve
from nameserver.xfr import TransferConfig, TransferService
from storage.db import Database, connect
from storage.dnsdata import parse_rrset, zone_from_text, zone_origin
from storage.migrate import upgrade
from storage.zones import OPERATOR, RRsetChange, WriteResult, apply_changes, replace_zone
from tests.conftest import PG_URL, _create_pg_database, _drop_pg_database

HOST = "127.0.0.1"
TIMEOUT_S = 5.0
T = TypeVar("T")


def store(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` against the store on a fresh loop and connection."""

    async def run() -> T:
        db = connect(database_url)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def import_zone(database_url: str, origin: str, text: str) -> WriteResult:
    async def work(db: Database) -> WriteResult:
        content = zone_from_text(text, zone_origin(origin))
        async with db.write() as session:
            return await replace_zone(session, content, OPERATOR)

    return store(database_url, work)


def put(origin: str, owner: str, rdtype: str, *rdatas: str, ttl: int = 300) -> RRsetChange:
    data = parse_rrset(zone_origin(origin), owner, rdtype, ttl, list(rdatas))
    return RRsetChange(data.name, data.rdtype, data)


def drop(origin: str, owner: str, rdtype: str) -> RRsetChange:
    data = put(origin, owner, rdtype, "192.0.2.1" if rdtype == "A" else "x.example.")
    return RRsetChange(data.name, data.rdtype, None)


def edit(database_url: str, origin: str, *changes: RRsetChange) -> WriteResult:
    async def work(db: Database) -> WriteResult:
        async with db.write() as session:
            return await apply_changes(session, origin, list(changes), OPERATOR)

    return store(database_url, work)


@contextmanager
def shared_database(folder: Path) -> Iterator[str]:
    """A fresh, migrated store for a whole module (as conftest's `database_url`,
    which is per test): SQLite in `folder`, or PostgreSQL when configured."""
    if PG_URL:
        url = asyncio.run(_create_pg_database(PG_URL))
    else:
        url = f"sqlite+aiosqlite:///{folder / 'zonehost.sqlite3'}"
    store(url, upgrade)
    try:
        yield url
    finally:
        if PG_URL:
            asyncio.run(_drop_pg_database(url))


@dataclass
class Primary:
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    table: ZoneTable
    follower: FeedFollower
    notifier: Notifier
    running: RunningNameserver

    def serial(self, origin: str) -> int | None:
        """The serial the in-memory table serves (None if not loaded)."""

        async def read() -> int | None:
            zone = self.table.get(origin)
            return None if zone is None else zone.serial

        return asyncio.run_coroutine_threadsafe(read(), self.loop).result(TIMEOUT_S)

    def wait_serial(self, origin: str, serial: int, timeout_s: float = 10.0) -> None:
        """Until the feed follower has applied `serial` of `origin`."""
        deadline = time.monotonic() + timeout_s
        while self.serial(origin) != serial:
            if time.monotonic() > deadline:
                raise AssertionError(f"{origin} not at serial {serial}: {self.serial(origin)}")
            time.sleep(0.02)


@contextmanager
def run_primary(
    database_url: str,
    config: TransferConfig,
    notify_options: NotifyOptions | None = None,
    port: int = 0,
) -> Iterator[Primary]:
    """Serve every zone of the store on 127.0.0.1 until the block ends."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="primary", daemon=True)
    thread.start()
    db = connect(database_url)

    async def start() -> Primary:
        table, position = await load_everything(db)
        notifier = Notifier(config.notify, key=config.notify_key, options=notify_options)
        follower = FeedFollower(
            db, table, position, FeedOptions(poll_interval_s=0.05, heartbeat_s=1.0),
            on_zone_changed=[notifier.zone_changed],
        )
        await follower.catch_up()
        running = await serve(
            table, [(HOST, port)], NameserverOptions(tcp_idle_timeout_s=5.0),
            notify=NotifyResponder(table), transfers=TransferService(db, table, config),
        )
        follower.start()
        return Primary(HOST, running.addresses[0][1], loop, table, follower, notifier, running)

    async def stop(primary: Primary) -> None:
        await primary.follower.stop()
        await primary.notifier.close()
        primary.running.close()
        await primary.running.wait_closed()
        await db.close()

    primary = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield primary
    finally:
        asyncio.run_coroutine_threadsafe(stop(primary), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def tcp_exchange(
    host: str, port: int, wire: bytes, count: int | None = None, quiet_s: float = 0.3,
    timeout_s: float = TIMEOUT_S,
) -> list[bytes]:
    """Send one message over TCP; read `count` replies, or (count None) every
    reply until the server has been quiet for `quiet_s`: a whole transfer, raw."""
    replies: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        while count is None or len(replies) < count:
            sock.settimeout(quiet_s if replies else timeout_s)
            try:
                head = _read_exact(sock, 2)
            except TimeoutError:
                if not replies:
                    raise
                break
            if head is None:
                break
            sock.settimeout(timeout_s)
            body = _read_exact(sock, struct.unpack("!H", head)[0])
            if body is None:
                break
            replies.append(body)
    return replies


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def soa_serial(message: dns.message.Message, origin: str) -> int:
    rrset = message.find_rrset(
        message.answer, dns.name.from_text(origin), dns.rdataclass.IN, dns.rdatatype.SOA
    )
    return int(rrset[0].serial)
