"""From the zone API's 2xx to the new answer served by a separate
`zonehost nameserver` process, and the 1,000-RRset PATCH.

    python bench/api_propagation.py                 # SQLite in a temp folder
    python bench/api_propagation.py --database-url postgresql+asyncpg://postgres@127.0.0.1/zh_bench
    python bench/api_propagation.py --edits 300 --patch-rrsets 1000

Three processes, as in production: this one (the HTTP client and the DNS
poller), `zonehost zoneapi` and `zonehost nameserver`, all on one store.

Edits: each is a one-RRset PUT with a new address. When the 2xx arrives the
name is queried over UDP in a tight loop (blocking on purpose: nothing else
runs meanwhile) until the answer carries the new address; the figure is
2xx -> first reply with the new address (median, p99, max). A random
pause of 0-60 ms before each edit keeps the edits out of step with the
nameserver's feed polling (every 50 ms on SQLite).

PATCH: one request changing `--patch-rrsets` RRsets (first created, then
all changed again). Timed: request sent -> 2xx, then 2xx -> the nameserver
serves the serial the 2xx returned (it swaps the zone in one step, so that
serial carries every change), then every changed name is queried (a burst
over UDP) and checked, and the time that check ended is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import select
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import dns.message
import dns.rdatatype

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_support import (
    ApiServer,
    NameServer,
    drop_database,
    fresh_database,
    seed_account,
)
from bench.dns import probe, procs

ZONE = "prop.example."
SERVE_TIMEOUT_S = 10.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_serial(lookup: probe.Lookup, serial: int, since: float) -> float | None:
    while True:
        served = lookup.serial()
        now = time.perf_counter()
        if served is not None and served >= serial:
            return now
        if now - since > SERVE_TIMEOUT_S:
            return None
        time.sleep(0.0002)


def check_all(port: int, expected: dict[str, str], timeout_s: float = SERVE_TIMEOUT_S) -> int:
    """Query every name of `expected` (name -> address) in bursts until each
    answers its address; the number still wrong when `timeout_s` ran out."""
    pending = dict(enumerate(expected.items()))
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        while pending and time.monotonic() < deadline:
            for qid, (name, _) in list(pending.items())[:200]:
                query = dns.message.make_query(name, dns.rdatatype.A)
                query.id = qid
                sock.sendto(query.to_wire(), (probe.HOST, port))
            until = time.monotonic() + 0.05
            while pending and (left := until - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                try:
                    reply = dns.message.from_wire(sock.recv(65535))
                except (OSError, dns.exception.DNSException):
                    continue
                item = pending.get(reply.id)
                texts = {rd.to_text() for rrset in reply.answer for rd in rrset}
                if item is not None and item[1] in texts:
                    del pending[reply.id]
    return len(pending)


async def edits(http: aiohttp.ClientSession, base: str, token: str, port: int,
                count: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    statuses: list[int] = []
    timeouts = 0
    for i in range(count):
        name = f"w{i % 10}"
        address = f"10.1.{i // 256 % 256}.{i % 256}"
        lookup = probe.Lookup(port, f"{name}.{ZONE}")
        # A random pause: edits must not fall into step with the feed's polling.
        await asyncio.sleep(random.uniform(0.0, 0.06))
        try:
            async with http.put(f"{base}/rrsets/{name}/A", headers=headers,
                                json={"ttl": 60, "records": [address]}) as response:
                await response.read()
                answered = time.perf_counter()
                statuses.append(response.status)
            if response.status != 200:
                continue
            seen = probe.wait_served(lookup, address, answered, SERVE_TIMEOUT_S, 0.0002)
        finally:
            lookup.close()
        if seen is None:
            timeouts += 1
        else:
            latencies.append((seen - answered) * 1000)
    errors = sum(1 for s in statuses if s != 200)
    print(f"  {count} one-RRset PUTs: 2xx -> served median {statistics.median(latencies):.1f} ms, "
          f"p90 {percentile(latencies, 90):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
          f"max {max(latencies):.1f} ms; {errors} HTTP errors, {timeouts} not served "
          f"within {SERVE_TIMEOUT_S:.0f} s")


async def patch(http: aiohttp.ClientSession, base: str, token: str, port: int, rrsets: int,
                round_: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    expected = {f"bulk{i}.{ZONE}": f"10.{2 + round_}.{i // 256 % 256}.{i % 256}"
                for i in range(rrsets)}
    body = [{"name": name, "type": "A", "ttl": 60, "records": [address]}
            for name, address in expected.items()]
    lookup = probe.Lookup(port, ZONE)
    try:
        sent = time.perf_counter()
        async with http.patch(f"{base}/rrsets", headers=headers, json=body) as response:
            answer = await response.json()
            answered = time.perf_counter()
        if response.status != 200:
            print(f"  PATCH of {rrsets} RRsets failed: {response.status} {str(answer)[:200]}")
            return
        serial_seen = wait_serial(lookup, int(answer["serial"]), answered)
    finally:
        lookup.close()
    wrong = check_all(port, expected)
    checked = time.perf_counter()
    what = "created" if round_ == 0 else "changed"
    serial_ms = f"{(serial_seen - answered) * 1000:.0f} ms" if serial_seen else "never"
    print(f"  PATCH {rrsets} RRsets {what}: sent -> 2xx {(answered - sent) * 1000:.0f} ms; "
          f"2xx -> new serial served {serial_ms}; all {rrsets} names checked at "
          f"+{(checked - answered) * 1000:.0f} ms, {wrong} wrong")


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--patch-rrsets", type=int, default=1000)
    procs.add_nice_argument(parser)
    args = parser.parse_args()
    with procs.niceness(args.nice), tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = await fresh_database(args.database_url
                                   or f"sqlite+aiosqlite:///{workdir}/bench.sqlite3")
        token = await seed_account(url, ZONE)
        nameserver = NameServer(url, workdir)
        try:
            nameserver.wait_serving([ZONE])
            async with ApiServer(url, workdir) as api, aiohttp.ClientSession() as http:
                print(f"zone API -> nameserver on {api.dialect} (API pid {api.pid}, "
                      f"nameserver pid {nameserver.pid}, load {probe_load()}):")
                base = f"{api.base_url}/zones/{ZONE}"
                await edits(http, base, token, nameserver.port, 10)  # warm-up, not reported
                await edits(http, base, token, nameserver.port, args.edits)
                for round_ in range(2):
                    await patch(http, base, token, nameserver.port, args.patch_rrsets, round_)
        finally:
            nameserver.stop()
            await drop_database(url)


def probe_load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    asyncio.run(main())
