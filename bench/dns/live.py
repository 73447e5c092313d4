"""Live updates against a running zonehost nameserver.

Edit latency: one RRset is committed through the store
(storage.zones.apply_changes, in this process), then the nameserver is
polled over UDP until it serves the new data; commit-to-served is the time
from the end of the commit to the first reply carrying the new address.

Wholesale replacement: while `zonehost zone import` replaces the big zone,
dnsperf queries the other zones at a fixed rate; the latencies seen while
the nameserver reloads the zone (commit to new data served) are the figure.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.name
import dns.rdatatype

from bench.dns import load, probe
from bench.dns.dataset import Dataset, write_big_variant
from bench.dns.servers import Server, zonehost_command, zonehost_env
from storage.db import connect
from storage.dnsdata import parse_rrset
from storage.zones import Actor, RRsetChange, apply_changes

SERVE_TIMEOUT_S = 30.0
ACTOR = Actor("bench")
BASELINE_S = 3.0


@dataclass(frozen=True, slots=True)
class EditLatency:
    edits: int
    commit_ms: tuple[float, ...]  # how long each commit took (the store's side)
    served_ms: tuple[float, ...]  # commit done -> new answer served
    timeouts: int

    def served(self, p: float) -> float | None:
        return load.percentile(self.served_ms, p)

    def commit(self, p: float) -> float | None:
        return load.percentile(self.commit_ms, p)


def save(result: EditLatency, path: Path) -> None:
    """The raw figures, in edit order, for a closer look."""
    path.write_text(json.dumps({"commit_ms": result.commit_ms, "served_ms": result.served_ms,
                                "timeouts": result.timeouts}))


def _address(i: int) -> str:
    return f"10.{200 + (i >> 16) % 50}.{(i >> 8) & 255}.{i & 255}"


async def _edits(database_url: str, port: int, targets: Sequence[tuple[str, str]],
                 seed: int) -> EditLatency:
    db = connect(database_url)
    rng = random.Random(seed)
    commits: list[float] = []
    served: list[float] = []
    timeouts = 0
    try:
        for i, (zone, host) in enumerate(targets):
            origin = dns.name.from_text(zone)
            address = _address(seed * 1000 + i)
            rrset = parse_rrset(origin, host, "A", 3600, [address])
            change = RRsetChange(rrset.name, dns.rdatatype.A, rrset)
            lookup = probe.Lookup(port, rrset.name.to_text())
            try:
                await asyncio.sleep(rng.uniform(0.0, 0.02))  # no phase lock with the poller
                began = time.perf_counter()
                async with db.write() as session:
                    await apply_changes(session, zone, [change], ACTOR)
                committed = time.perf_counter()
                commits.append((committed - began) * 1000)
                seen = probe.wait_served(lookup, address, committed, SERVE_TIMEOUT_S)
                if seen is None:
                    timeouts += 1
                else:
                    served.append((seen - committed) * 1000)
            finally:
                lookup.close()
    finally:
        await db.close()
    return EditLatency(len(targets), tuple(commits), tuple(served), timeouts)


def edit_latency(database_url: str, server: Server, targets: Sequence[tuple[str, str]],
                 seed: int = 1) -> EditLatency:
    """`targets`: (zone origin, owner relative to it) to set a new A RRset at."""
    return asyncio.run(_edits(database_url, server.port, targets, seed))


def small_zone_targets(dataset: Dataset, count: int) -> list[tuple[str, str]]:
    return [(dataset.customers[(i * 7) % len(dataset.customers)], "www") for i in range(count)]


def big_zone_targets(dataset: Dataset, count: int) -> list[tuple[str, str]]:
    step = max(1, dataset.big_names // max(count, 1))
    return [(dataset.big_origin, f"h{(i * step) // 20 * 20}") for i in range(count)]


@dataclass(frozen=True, slots=True)
class Replacement:
    import_s: float  # `zonehost zone import` wall time
    served_s: float  # import command done -> new big-zone data served
    during_import: load.PerfResult
    baseline_window: slice  # the seconds before the import: the machine's own noise
    import_window: slice
    reload_window: slice
    others_lost: int

    def p99_baseline_ms(self) -> float | None:
        return self.during_import.percentile_ms(99, self.baseline_window)

    def p99_import_ms(self) -> float | None:
        return self.during_import.percentile_ms(99, self.import_window)

    def p99_reload_ms(self) -> float | None:
        return self.during_import.percentile_ms(99, self.reload_window)

    def max_reload_ms(self) -> float | None:
        lat = self.during_import.latencies_ms[self.reload_window]
        return max(lat) if lat else None


def replace_big_zone(dataset: Dataset, server: Server, database_url: str, workdir: Path,
                     variant: int, qps: int, log: Callable[[str], None] = print) -> Replacement:
    """Replace the big zone through the CLI while other zones are queried at `qps`."""
    path = write_big_variant(dataset, variant)
    changed = f"h1.{dataset.big_origin}"  # its address moves with every variant
    expected = f"10.0.0.{(1 + variant) & 255}"
    background = load.Background(
        server.port, dataset.other_zones_query_file, qps, workdir / f"replace-{variant}.txt",
        server.pids,
    )
    lookup = probe.Lookup(server.port, changed)
    try:
        time.sleep(BASELINE_S + 0.5)
        began = time.monotonic()
        import_s = zonehost_command(
            ["zone", "import", dataset.big_origin, str(path)], zonehost_env(database_url), workdir
        )
        imported = time.monotonic()
        while True:
            texts = lookup.texts()
            now = time.monotonic()
            if texts is not None and expected in texts:
                break
            if now - imported > SERVE_TIMEOUT_S * 4:
                raise RuntimeError(f"{changed} not updated {now - imported:.0f} s after the import")
            time.sleep(0.002)
        served = now
        time.sleep(1.0)
    finally:
        lookup.close()
        result = background.finish()
    log(f"  replaced {dataset.big_origin}: import {import_s:.1f} s, served {served - imported:.2f} s later")
    return Replacement(
        import_s=import_s,
        served_s=served - imported,
        during_import=result,
        baseline_window=slice(background.index_at(began - BASELINE_S), background.index_at(began)),
        import_window=slice(background.index_at(began), background.index_at(imported)),
        # The commit lands just before the command exits: start the window a little earlier.
        reload_window=slice(background.index_at(imported - 0.5), background.index_at(served + 0.2)),
        others_lost=result.lost,
    )
