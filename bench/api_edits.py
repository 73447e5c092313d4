"""Zone API edits per second through the whole stack (authentication by
token, rights, allowlist gate, validation, one transaction with serial,
audit and change feed), sequentially and with concurrent clients.

    python bench/api_edits.py                      # SQLite in a temp folder
    python bench/api_edits.py --database-url postgresql+asyncpg://postgres@127.0.0.1/zh_bench
    python bench/api_edits.py --seconds 10 --clients 8

Each edit is a one-RRset PUT (like PowerDNS's one-RRset PATCH) with a new
address every time, so every request really writes. Prints edits/s, error
count and latency percentiles for each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import zones as store
from storage.db import Database, connect
from storage.dnsdata import zone_from_text, zone_origin
from storage.migrate import upgrade
from storage.models import Account, AccountStatus, Zone
from storage.models.auth import ApiToken
from zoneapi.app import start_api
from zoneapi.config import RateLimit, ZoneApiConfig, new_secret_key
from zoneapi.crypto import digest, new_token
from zoneapi.keys import CONTEXT
from zoneapi.services import accounts

ZONE = """$ORIGIN bench.example.
@ 3600 IN SOA ns1.host.example. hostmaster.host.example. 1 7200 3600 1209600 300
@ 3600 IN NS ns1.host.example.
@ 3600 IN NS ns2.host.example.
www 300 IN A 192.0.2.1
"""


async def seed(db: Database, config: ZoneApiConfig) -> str:
    from sqlalchemy import update

    from zoneapi.app import create_app

    ctx = create_app(config, db)[CONTEXT]
    origin = zone_origin("bench.example")
    async with db.write() as session:
        account, user = await accounts.sign_up(
            session, ctx, login="bench", password="a long bench password", email="b@x.example",
            name="Bench", country="FR", postal_address="", phone=None)
        account.status = AccountStatus.ACTIVE
        await session.flush()
        await session.execute(update(Account).where(Account.id == account.id)
                              .values(ip_allowlist=["127.0.0.0/8", "::1/128"]))
        await store.replace_zone(session, zone_from_text(ZONE, origin), store.OPERATOR)
        await session.execute(update(Zone).where(Zone.name == "bench.example.")
                              .values(account_id=account.id))
        secret = new_token()
        session.add(ApiToken(token_hash=digest(secret), user_id=user.id, name="bench",
                             allowed_subnets=[], policies=[], perm_manage=False))
    return secret


async def client(http: aiohttp.ClientSession, url: str, token: str, names: list[str],
                 deadline: float, counter: list[int], latencies: list[float],
                 errors: list[str]) -> None:
    i = 0
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() < deadline:
        i += 1
        name = names[i % len(names)]
        n = counter[0] = counter[0] + 1
        body = {"ttl": 300, "records": [f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"]}
        started = time.perf_counter()
        async with http.put(f"{url}/rrsets/{name}/A", json=body, headers=headers) as response:
            await response.read()
            if response.status != 200:
                errors.append(f"{response.status} {(await response.text())[:100]}")
        latencies.append(time.perf_counter() - started)


async def phase(url: str, token: str, clients: int, seconds: float) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    counter = [0]
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(
            client(http, url, token, [f"c{c}-{k}" for k in range(20)], deadline, counter,
                   latencies, errors)
            for c in range(clients)))
        elapsed = time.perf_counter() - started
    ok = len(latencies) - len(errors)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"  {clients} client(s): {ok / elapsed:7.1f} edits/s ok, {len(errors)} errors, "
          f"latency p50 {q[49] * 1000:.1f} ms p99 {q[98] * 1000:.1f} ms "
          f"({len(latencies)} requests in {elapsed:.1f} s)")
    for error in errors[:3]:
        print(f"    error: {error}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--port", type=int, default=18053)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        db = connect(url)
        await upgrade(db)
        unlimited = RateLimit(1e9, 10**9)
        config = replace(ZoneApiConfig(secret_key=new_secret_key()),
                         listen=("127.0.0.1", args.port), rate_per_address=unlimited,
                         rate_per_token=unlimited)
        token = await seed(db, config)
        runner = await start_api(config, db)
        try:
            print(f"zone API edits on {db.engine.dialect.name} ({db.safe_url}):")
            base = f"http://127.0.0.1:{args.port}/api/v1/zones/bench.example"
            await phase(base, token, 1, args.seconds)
            await phase(base, token, args.clients, args.seconds)
        finally:
            await runner.cleanup()
            await db.close()


if __name__ == "__main__":
    asyncio.run(main())
