"""What one zone API request costs, in units the machine's load does not
move: Python function calls in the server's request path (cProfile
counts), SQL statements (through the engine and through storage.driver's
plain connections), and aiosqlite thread hand-offs (SQLite only).

    python bench/api_cost.py                     # one-RRset PUT and GET /me on SQLite
    python bench/api_cost.py --database-url postgresql+asyncpg://postgres@127.0.0.1/zh_cost
    python bench/api_cost.py --zone-rrsets 1000  # is an edit's cost independent of the zone's size?
    python bench/api_cost.py --top 30            # and the functions called most per request
    python bench/api_cost.py --zone-rrsets 100000 --requests 20   # a big zone's creates and
                                                 # filtered lists (GET /rrsets?name=, ?type=)

The API runs in this process (aiohttp's TestServer) so its calls can be
counted; compare two checkouts with PYTHONPATH pointing at each. Wall and
CPU times on a shared machine move 2x between runs; these counts do not.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import aiosqlite.core
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_support import drop_database, fresh_database, seed_account
from storage import driver
from storage.db import connect
from zoneapi.app import create_app
from zoneapi.config import RateLimit, ZoneApiConfig, new_secret_key

Request = Callable[[aiohttp.ClientSession, int], Awaitable[None]]


class Counters:
    def __init__(self) -> None:
        self.statements = 0
        self.control = 0  # BEGIN, COMMIT, ROLLBACK sent by storage.driver on PostgreSQL
        self.hops = 0
        self.profile = cProfile.Profile(time.thread_time)

    def count_hops(self) -> None:
        """Wrap aiosqlite's hand-off to its thread (one per driver call)."""
        original: Any = aiosqlite.core.Connection._execute
        counters = self

        async def counted(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            counters.hops += 1
            return await original(conn, fn, *args, **kwargs)

        setattr(aiosqlite.core.Connection, "_execute", counted)  # noqa: B010 (typed as a method)

    def count_driver_statements(self) -> None:
        """Wrap storage.driver's statement calls (BEGIN and COMMIT are not counted)."""
        counters = self
        for cls in (driver._SqliteTx, driver._PgTx, driver.SqliteDriver, driver.PgDriver):
            for name in ("fetch", "execute", "executemany"):
                original = cls.__dict__.get(name)
                if original is None:
                    continue

                def wrap(original: Any) -> Any:
                    async def counted(*args: Any) -> Any:
                        counters.statements += 1
                        return await original(*args)
                    return counted

                setattr(cls, name, wrap(original))

    def count_transaction_control(self) -> None:
        """Wrap asyncpg's simple-protocol execute (no arguments): the driver's
        BEGIN/COMMIT/ROLLBACK, each a round trip of its own."""
        import asyncpg.connection

        original: Any = asyncpg.connection.Connection.execute
        counters = self

        async def counted(conn: Any, query: str, *args: Any, **kwargs: Any) -> Any:
            if not args and query.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
                counters.control += 1
            return await original(conn, query, *args, **kwargs)

        setattr(asyncpg.connection.Connection, "execute", counted)  # noqa: B010


async def measure(label: str, http: aiohttp.ClientSession, one: Request, counters: Counters,
                  requests: int, top: int = 0) -> None:
    for i in range(min(50, requests)):  # imports, SQL compilation, pools: not the steady state
        await one(http, -1 - i)
    counters.profile = cProfile.Profile(time.thread_time)
    counters.statements = counters.hops = counters.control = 0
    walls = []
    for i in range(requests):
        started = time.perf_counter()
        await one(http, 50 + i)
        walls.append(time.perf_counter() - started)
    calls = pstats.Stats(counters.profile).total_calls  # type: ignore[attr-defined]
    print(f"  {label:22s} {calls / requests:7.0f} Python calls, "
          f"{counters.statements / requests:4.1f} SQL statements "
          f"(+{counters.control / requests:.1f} BEGIN/COMMIT), "
          f"{counters.hops / requests:4.1f} aiosqlite hand-offs per request "
          f"(median {statistics.median(walls) * 1000:.2f} ms, profiled)")
    if top:  # where the calls go: own calls per request, and own CPU time
        stats = pstats.Stats(counters.profile).stats  # type: ignore[attr-defined]
        rows = sorted(stats.items(), key=lambda kv: -kv[1][1])[:top]
        for (path, line, name), (_, ncalls, tottime, _, _) in rows:
            where = f"{Path(path).name}:{line}" if line else path
            print(f"      {ncalls / requests:6.1f} calls {tottime / requests * 1e6:6.1f} us  "
                  f"{name} ({where})")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--zone-rrsets", type=int, default=0)
    parser.add_argument("--top", type=int, default=0,
                        help="also list the N functions called most per request")
    args = parser.parse_args()
    counters = Counters()
    counters.count_hops()
    counters.count_driver_statements()
    if args.database_url:
        counters.count_transaction_control()
    with tempfile.TemporaryDirectory() as tmp:
        url = await fresh_database(args.database_url or f"sqlite+aiosqlite:///{tmp}/cost.sqlite3")
        token = await seed_account(url, "bench.example", extra_rrsets=args.zone_rrsets)
        db = connect(url)

        @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
        def _statement(*_: Any) -> None:
            counters.statements += 1

        unlimited = RateLimit(1e9, 10**9)
        app = create_app(replace(ZoneApiConfig(secret_key=new_secret_key()),
                                 rate_per_address=unlimited, rate_per_token=unlimited,
                                 max_records_per_zone=10**7), db)

        @web.middleware
        async def profiled(request: web.Request, handler: Any) -> web.StreamResponse:
            counters.profile.enable()
            try:
                return await handler(request)  # type: ignore[no-any-return]
            finally:
                counters.profile.disable()

        app.middlewares.insert(0, profiled)
        server = TestServer(app)
        await server.start_server()
        headers = {"Authorization": f"Bearer {token}"}

        async def put(http: aiohttp.ClientSession, i: int) -> None:
            body = {"ttl": 300, "records": [f"10.0.{i // 256 % 256}.{i % 256}"]}
            url = server.make_url(f"/api/v1/zones/bench.example/rrsets/x{i % 20}/A")
            async with http.put(url, json=body, headers=headers) as reply:
                await reply.read()
                assert reply.status == 200, await reply.text()

        async def create(http: aiohttp.ClientSession, i: int) -> None:
            body = {"name": f"new{i + 100}", "type": "A", "ttl": 300, "records": ["10.1.2.3"]}
            url = server.make_url("/api/v1/zones/bench.example/rrsets")
            async with http.post(url, json=body, headers=headers) as reply:
                await reply.read()
                assert reply.status == 201, await reply.text()

        async def named(http: aiohttp.ClientSession, i: int) -> None:
            url = server.make_url("/api/v1/zones/bench.example/rrsets")
            async with http.get(url, params={"name": f"x{i % 20}"}, headers=headers) as reply:
                body = await reply.json()
                assert reply.status == 200 and body["total"] == 1, body

        async def typed(http: aiohttp.ClientSession, i: int) -> None:
            url = server.make_url("/api/v1/zones/bench.example/rrsets")
            async with http.get(url, params={"type": "NS"}, headers=headers) as reply:
                body = await reply.json()
                assert reply.status == 200 and body["total"] == 1, body

        async def me(http: aiohttp.ClientSession, i: int) -> None:
            async with http.get(server.make_url("/api/v1/me"), headers=headers) as reply:
                await reply.read()
                assert reply.status == 200, await reply.text()

        try:
            print(f"zone API request cost on {db.engine.dialect.name} "
                  f"({args.zone_rrsets} more RRsets in the zone):")
            async with aiohttp.ClientSession() as http:
                await measure("PUT one RRset", http, put, counters, args.requests, args.top)
                await measure("POST a new RRset", http, create, counters, args.requests,
                              args.top)
                await measure("GET /rrsets?name=", http, named, counters, args.requests,
                              args.top)
                await measure("GET /rrsets?type=NS", http, typed, counters, args.requests,
                              args.top)
                await measure("GET /me", http, me, counters, args.requests, args.top)
        finally:
            await server.close()
            await db.close()
            await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
