"""Zone API edits per second through the whole stack (authentication by
token, rights, allowlist gate, validation, one transaction with serial,
audit and change feed), sequentially and with concurrent clients.

    python bench/api_edits.py                      # SQLite in a temp folder
    python bench/api_edits.py --database-url postgresql+asyncpg://postgres@127.0.0.1/zh_bench
    python bench/api_edits.py --seconds 10 --clients 8
    python bench/api_edits.py --workers 2          # `zonehost zoneapi --workers 2`

The API runs as its own `zonehost zoneapi` process, as in production, so
the figures are the server's alone: besides wall-clock edits/s (which a
loaded machine drags down) it reports the server's CPU time per edit
(user + system, from /proc/PID/stat, summed over the process and its
workers), the figure to compare between runs. Each edit is a one-RRset
PUT (like PowerDNS's one-RRset PATCH) with a new address every time, so
every request really writes. A PostgreSQL URL names a database that is
dropped and created afresh.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_support import (
    SOURCE,
    ApiServer,
    drop_database,
    fresh_database,
    seed_account,
)
from bench.dns import procs


def process_cpu_s(pids: list[int]) -> tuple[float, float]:
    """User and system CPU seconds of the processes `pids` so far (summed)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])
    return user / tick, system / tick


def machine_idle_s() -> tuple[float, float]:
    """Idle (+ iowait) and total CPU seconds of the machine so far, all CPUs (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    tick = os.sysconf("SC_CLK_TCK")
    return (fields[3] + fields[4]) / tick, sum(fields) / tick


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def client(http: aiohttp.ClientSession, url: str, token: str, names: list[str],
                 deadline: float, counter: list[int], latencies: list[float],
                 errors: list[str], limit: int | None = None) -> None:
    i = 0
    headers = {"Authorization": f"Bearer {token}"}
    while time.perf_counter() < deadline and (limit is None or i < limit):
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


async def warm_up(urls: list[str], token: str, requests: int, connections: int) -> None:
    """First requests pay for imports and SQL compilation: keep them out of the figures
    (on several connections, which the kernel spreads over the workers)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
        await asyncio.gather(*(
            client(http, urls[c % len(urls)], token, [f"warm{c}"], time.perf_counter() + 60,
                   [0], [], [],
                   limit=requests // connections)
            for c in range(connections)))


async def phase(urls: list[str], token: str, clients: int, seconds: float,
                server: ApiServer) -> None:
    """`clients` concurrent clients, client c editing the zone of urls[c % len(urls)]."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = [0]
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + seconds
        pids = server.pids()  # the server and its workers
        cpu_before, cpu_client, idle_before = process_cpu_s(pids), own_cpu_s(), machine_idle_s()
        started = time.perf_counter()
        await asyncio.gather(*(
            client(http, urls[c % len(urls)], token, [f"c{c}-{k}" for k in range(20)],
                   deadline, counter, latencies, errors)
            for c in range(clients)))
        elapsed = time.perf_counter() - started
        cpu_after = process_cpu_s(pids)
        idle_after = machine_idle_s()
        user_s, system_s = cpu_after[0] - cpu_before[0], cpu_after[1] - cpu_before[1]
        cpu_server = user_s + system_s
        cpu_client = own_cpu_s() - cpu_client
    done = len(latencies)
    ok = done - len(errors)
    q = statistics.quantiles(latencies, n=100) if done > 1 else [0.0] * 99
    print(f"  {clients} client(s): {ok / elapsed:7.1f} edits/s ok, {len(errors)} errors, "
          f"latency p50 {q[49] * 1000:.1f} ms p99 {q[98] * 1000:.1f} ms "
          f"({done} requests in {elapsed:.1f} s)")
    print(f"      server CPU {cpu_server / max(done, 1) * 1000:.2f} ms/edit "
          f"(user {user_s / max(done, 1) * 1000:.2f}, system {system_s / max(done, 1) * 1000:.2f}; "
          f"= {done / cpu_server if cpu_server else 0:.0f} edits per CPU-second), "
          f"bench client CPU {cpu_client / max(done, 1) * 1000:.2f} ms/edit")
    idle_s, total_s = idle_after[0] - idle_before[0], idle_after[1] - idle_before[1]
    print(f"      server busy {cpu_server / elapsed * 100:.0f}% of one CPU; the machine's "
          f"{os.cpu_count()} CPUs {idle_s / total_s * 100 if total_s else 0:.0f}% idle")
    for error in errors[:3]:
        print(f"    error: {error}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--zone-rrsets", type=int, default=0,
                        help="RRsets in the edited zone besides the edited ones")
    parser.add_argument("--zones", type=int, default=1,
                        help="zones edited, client c editing zone c modulo this (default 1: "
                        "every client edits the same zone, whose edits are serialised)")
    parser.add_argument("--server-source", type=Path, default=SOURCE,
                        help="run the server from this checkout (e.g. `git archive` of an "
                        "older commit) to compare; the schema must be the same")
    parser.add_argument("--profile", type=Path,
                        help="run the server under cProfile (CPU clock), stats written here")
    parser.add_argument("--workers", type=int, default=1,
                        help="the server's --workers (its CPU figure counts every process)")
    procs.add_nice_argument(parser)
    args = parser.parse_args()
    with procs.niceness(args.nice), tempfile.TemporaryDirectory() as tmp:
        url = await fresh_database(args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3")
        zones = (["bench.example"] if args.zones == 1
                 else [f"bench{i}.example" for i in range(args.zones)])
        token = await seed_account(url, *zones, extra_rrsets=args.zone_rrsets)
        async with ApiServer(url, Path(tmp), args.profile, args.server_source,
                             args.workers) as server:
            print(f"zone API edits on {server.dialect} (server pid {server.pid}, "
                  f"{args.workers} worker(s), {len(zones)} zone(s), nice {args.nice}, "
                  f"load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}):")
            urls = [f"{server.base_url}/zones/{zone}" for zone in zones]
            await warm_up(urls, token, 100 * args.workers, 4 * args.workers)
            await phase(urls, token, 1, args.seconds, server)
            await phase(urls, token, args.clients, args.seconds, server)
        await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
