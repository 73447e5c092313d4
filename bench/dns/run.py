#!/usr/bin/env python3
"""The DNS benchmark: zonehost against NSD, Knot DNS and PowerDNS (gsqlite3)
on the same realistic data set, with dnsperf, in one run.

    python bench/dns/run.py --quick      # dnsperf -l 3, fewer edits (about 5 minutes)
    python bench/dns/run.py              # the full run (dnsperf -l 10, 100 edits)

It generates 1,000 customer zones and one 100,000-name zone (master files
in a temporary folder), loads them into zonehost's store with the real CLI
(`zonehost db upgrade`, `zone import-dir`, `zone import`) on SQLite and on a
fresh PostgreSQL database, and into NSD, Knot and PowerDNS; starts each
server alone on 127.0.0.1 and a free port; measures start-up time, memory,
saturation throughput (`dnsperf -c 4 -q 500 -l 10`), answers per server
CPU-second and latency at a fixed 20,000 queries/s; then, for zonehost,
edit latency (commit through storage.zones.apply_changes to new answer
served) and latency for other zones while the big zone is replaced. It
prints one table. Every process it starts is stopped, and its temporary
folder and databases are removed, also on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy.engine import make_url

from bench.dns import dataset as ds
from bench.dns import live, load, procs, profile, servers
from bench.dns.servers import Server, ServerFailed

REFERENCES = ("nsd", "knot", "pdns")
IDLE_S = 3.0
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1/zonehost_bench_{pid}"


@dataclass(frozen=True, slots=True)
class Plan:
    seconds: int  # dnsperf -l
    rate: int  # fixed-rate run, queries/s
    edits: int  # small-zone edits per backend
    big_edits: int  # edits in the 100,000-name zone per backend
    replace_qps: int  # load on other zones while the big zone is replaced


FULL = Plan(seconds=10, rate=20_000, edits=100, big_edits=20, replace_qps=5_000)
QUICK = Plan(seconds=3, rate=20_000, edits=30, big_edits=5, replace_qps=5_000)


@dataclass(slots=True)
class Row:
    """One server configuration, measured."""

    name: str
    store: str
    config: str
    ready_s: float | None = None
    rss_mib: float | None = None  # largest process, after the runs
    idle_cpu: float | None = None  # CPU share with no queries (feed polling, timers)
    saturation: load.PerfResult | None = None
    fixed: load.PerfResult | None = None
    load_avg: str = ""
    error: str | None = None


@dataclass(slots=True)
class StoreFigures:
    """zonehost-only figures, per database."""

    store: str
    import_customers_s: float | None = None
    import_big_s: float | None = None
    edits_small: live.EditLatency | None = None
    edits_big: live.EditLatency | None = None
    replacement: live.Replacement | None = None
    error: str | None = None


@dataclass(slots=True)
class Report:
    dataset: ds.Dataset
    plan: Plan
    rows: list[Row] = field(default_factory=list)
    stores: list[StoreFigures] = field(default_factory=list)
    pdns_load_s: float | None = None
    profile: str | None = None
    load_before: str = ""
    nice: int = 0


# -- databases ----------------------------------------------------------------

def _store_name(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """Create the PostgreSQL database named in `url` (it must not exist) and drop
    it afterwards; a SQLite URL is used as it is."""
    if not url.startswith("postgresql"):
        yield url
        return
    parsed = make_url(url)
    name = parsed.database or ""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"database name {name!r}: use lower-case letters, digits and _")
    base = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", parsed.host or "127.0.0.1",
            "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres", "-d", "postgres"]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    done = subprocess.run([*base, "-c", f"CREATE DATABASE {name}"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    if done.returncode != 0:
        raise ServerFailed(f"cannot create database {name}: {done.stderr.strip()}")
    try:
        yield url
    finally:
        subprocess.run([*base, "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       capture_output=True, env=env, timeout=60, check=False)


# -- measuring one server -------------------------------------------------------

def measure(server: Server, data: ds.Dataset, plan: Plan, workdir: Path, row: Row,
            log: Callable[[str], None]) -> None:
    row.ready_s = server.ready_s
    row.load_avg = procs.load_average()
    log(f"  {row.name}/{row.store}: every zone answered {server.ready_s:.2f} s after start;"
        f" load average {row.load_avg}")
    pids = server.pids()
    before = procs.cpu_seconds(pids)
    time.sleep(IDLE_S)
    row.idle_cpu = (procs.cpu_seconds(pids) - before) / IDLE_S
    tag = re.sub(r"[^a-z0-9]+", "-", f"{row.name} {row.store} {row.config}".lower()).strip("-")
    saturation = load.run(server.port, data.query_file, plan.seconds, server.pids,
                          workdir / f"{tag}-saturation.txt")
    _check_alive(server, row)
    row.saturation = saturation
    log(f"  saturation: {row.saturation.qps:,.0f} q/s, {row.saturation.answers_per_cpu_s:,.0f}"
        f" answers/CPU-s, lost {row.saturation.lost}")
    fixed = load.run(server.port, data.latency_file, plan.seconds, server.pids,
                     workdir / f"{tag}-fixed.txt", qps=plan.rate, verbose=True)
    _check_alive(server, row)
    row.fixed = fixed
    log(f"  at {plan.rate:,} q/s: p99 {_ms(row.fixed.percentile_ms(99))} ms,"
        f" achieved {row.fixed.qps:,.0f} q/s, lost {row.fixed.lost}")
    row.rss_mib = procs.memory(server.pids()).max_rss_mib


def _check_alive(server: Server, row: Row) -> None:
    if not server.alive():
        row.idle_cpu = None
        raise ServerFailed(f"{row.name} exited during the runs: {server.log_tail(3)}")


def run_reference(name: str, data: ds.Dataset, plan: Plan, workdir: Path, report: Report,
                  log: Callable[[str], None]) -> None:
    stores = {"nsd": "zone files", "knot": "zone files", "pdns": "gsqlite3"}
    row = Row(name, stores[name], "")
    report.rows.append(row)
    server: Server | None = None
    try:
        if name == "nsd":
            server = servers.start_nsd(data, workdir)
        elif name == "knot":
            server = servers.start_knot(data, workdir)
        else:
            server, report.pdns_load_s = servers.start_pdns(data, workdir)
        row.config = server.config
        measure(server, data, plan, workdir, row, log)
    except (ServerFailed, RuntimeError, subprocess.SubprocessError, OSError) as exc:
        row.error = str(exc).splitlines()[0][:120]
        log(f"  {name} FAILED: {exc}")
    finally:
        if server is not None:
            server.stop()


def run_zonehost(url: str, workers: list[int], data: ds.Dataset, plan: Plan, workdir: Path,
                 report: Report, args: argparse.Namespace, log: Callable[[str], None]) -> None:
    store = _store_name(url)
    figures = StoreFigures(store)
    report.stores.append(figures)
    env = servers.zonehost_env(url)
    try:
        servers.zonehost_command(["db", "upgrade"], env, workdir)
        log(f"  importing {len(data.customers)} zones into {store} (zone import-dir) ...")
        figures.import_customers_s = servers.zonehost_command(
            ["zone", "import-dir", str(data.customer_dir)], env, workdir)
        log(f"  ... {figures.import_customers_s:.1f} s; the {data.big_names:,}-name zone"
            " (zone import) ...")
        figures.import_big_s = servers.zonehost_command(
            ["zone", "import", data.big_origin, str(data.big_file)], env, workdir)
        log(f"  ... {figures.import_big_s:.1f} s")
    except (ServerFailed, subprocess.SubprocessError) as exc:
        figures.error = str(exc).splitlines()[0][:120]
        log(f"  zonehost/{store} import FAILED: {exc}")
        return
    for count in workers:
        row = Row("zonehost", store, "1 process" if count == 1 else f"--workers {count}")
        report.rows.append(row)
        server: Server | None = None
        try:
            server = servers.start_zonehost(data, workdir / f"ns-{store}-{count}", url, count)
            measure(server, data, plan, workdir, row, log)
            if args.profile and count == 1 and report.profile is None:
                report.profile = profile.top_functions(server, data, plan, workdir, log)
            if count == workers[0]:
                _live(url, server, data, plan, workdir, figures, log)
        except (ServerFailed, RuntimeError, subprocess.SubprocessError, OSError) as exc:
            row.error = str(exc).splitlines()[0][:120]
            log(f"  zonehost/{store} FAILED: {exc}")
        finally:
            if server is not None:
                server.stop()


def _live(url: str, server: Server, data: ds.Dataset, plan: Plan, workdir: Path,
          figures: StoreFigures, log: Callable[[str], None]) -> None:
    log(f"  {plan.edits} edits of small zones ...")
    figures.edits_small = live.edit_latency(url, server, live.small_zone_targets(data, plan.edits))
    live.save(figures.edits_small, workdir / f"edits-small-{figures.store}.json")
    log(f"  ... commit->served median {_ms(figures.edits_small.served(50))} ms,"
        f" p99 {_ms(figures.edits_small.served(99))} ms")
    if plan.big_edits:
        log(f"  {plan.big_edits} edits of the big zone ...")
        figures.edits_big = live.edit_latency(
            url, server, live.big_zone_targets(data, plan.big_edits), seed=2)
        live.save(figures.edits_big, workdir / f"edits-big-{figures.store}.json")
        log(f"  ... commit {_ms(figures.edits_big.commit(50))} ms, commit->served median"
            f" {_ms(figures.edits_big.served(50))} ms, p99 {_ms(figures.edits_big.served(99))} ms")
    log(f"  replacing the big zone under {plan.replace_qps:,} q/s for other zones ...")
    figures.replacement = live.replace_big_zone(data, server, url, workdir, 1, plan.replace_qps, log)


# -- the table ----------------------------------------------------------------

def _ms(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "lost"
    return f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def render(report: Report) -> str:
    data, plan = report.dataset, report.plan
    out = [
        (f"DNS benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs"
        f" ({_cpu_model()})"),
        (f"data: {len(data.customers):,} customer zones + {data.big_origin} ({data.big_names:,}"
        f" names), {data.records:,} records; queries: {data.queries:,} lines"
        f" ({data.distinct_queries:,} distinct), mix 70% A/AAAA, 10% MX/TXT, 10% NXDOMAIN,"
        " 5% CNAME, 5% referral"),
        (f"load: dnsperf -c 4 -q 500 -l {plan.seconds}; fixed rate: the same with -Q {plan.rate}"
         " (-v for percentiles) on a second draw of the mix; " + _looped(report)),
        (f"machine: load average {report.load_before} before the run; bench niceness"
         f" {report.nice}"),
        "",
        ("| server | store | config | ready s | RSS MiB | idle CPU | q/s | avg ms | answers/CPU-s | CPU |"
        f" @{plan.rate // 1000}k q/s | @{plan.rate // 1000}k avg ms | p50 ms | p99 ms | lost |"
        " load avg |"),
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for row in report.rows:
        if row.error and row.saturation is None:
            out.append(f"| {row.name} | {row.store} | {row.config} | FAILED: {row.error} |")
            continue
        sat, fix = row.saturation, row.fixed
        out.append(
            f"| {row.name} | {row.store} | {row.config} | {_ms(row.ready_s)} |"
            f" {_ms(row.rss_mib, 1)} | {_pct(row.idle_cpu)} | {_n(sat.qps if sat else None)} |"
            f" {_ms(sat.avg_ms if sat else None)} | {_n(sat.answers_per_cpu_s if sat else None)} |"
            f" {_pct(sat.cpu_share if sat else None)} | {_n(fix.qps if fix else None)} |"
            f" {_ms(fix.avg_ms if fix else None)} | {_ms(fix.percentile_ms(50) if fix else None)} |"
            f" {_ms(fix.percentile_ms(99) if fix else None)} |"
            f" {(sat.lost if sat else 0) + (fix.lost if fix else 0)} | {row.load_avg} |"
        )
    out += ["", *_ratios(report), "", *_store_table(report), "", *_targets(report)]
    if report.pdns_load_s is not None:
        out.append(f"\n(PowerDNS zone2sql + SQLite load of the same zones: {report.pdns_load_s:.1f} s)")
    if report.profile:
        out += ["", report.profile]
    return "\n".join(out)


def _looped(report: Report) -> str:
    sent = max((r.saturation.sent for r in report.rows if r.saturation), default=0)
    if sent <= report.dataset.queries:
        return (f"the largest run sent {sent:,} queries: no run looped over its file, every"
                " NXDOMAIN name was new")
    return f"the largest run sent {sent:,} queries: runs LOOPED over their file (raise --queries)"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _find(report: Report, name: str) -> Row | None:
    return next((r for r in report.rows if r.name == name and r.saturation), None)


def _ratios(report: Report) -> list[str]:
    lines = ["| ratio | q/s | answers/CPU-s |", "|---|--:|--:|"]
    for row in report.rows:
        if row.name != "zonehost" or row.saturation is None:
            continue
        for ref in REFERENCES:
            other = _find(report, ref)
            if other is None or other.saturation is None:
                continue
            lines.append(
                f"| zonehost ({row.store}, {row.config}) / {ref} |"
                f" {_ratio(row.saturation.qps, other.saturation.qps)} |"
                f" {_ratio(row.saturation.answers_per_cpu_s, other.saturation.answers_per_cpu_s)} |"
            )
    return lines


def _store_table(report: Report) -> list[str]:
    if not report.stores:
        return []
    head = "| zonehost store figures | " + " | ".join(s.store for s in report.stores) + " |"
    lines = [head, "|---|" + "--:|" * len(report.stores)]

    def line(label: str, get: Callable[[StoreFigures], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(get(s) for s in report.stores) + " |")

    def edits(e: live.EditLatency | None, what: Callable[[live.EditLatency], str]) -> str:
        return "-" if e is None else what(e)

    data = report.dataset
    line(f"import {len(data.customers):,} zones (zone import-dir), s",
         lambda s: _ms(s.import_customers_s, 1))
    line(f"import the {data.big_names:,}-name zone (zone import), s",
         lambda s: _ms(s.import_big_s, 1))
    line("small-zone edit: commit -> served, median / p99 ms", lambda s: edits(
        s.edits_small, lambda e: f"{_ms(e.served(50))} / {_ms(e.served(99))} (n={e.edits},"
        f" timeouts {e.timeouts})"))
    line("small-zone edit: the commit itself, median ms",
         lambda s: edits(s.edits_small, lambda e: _ms(e.commit(50))))
    line("big-zone edit: commit -> served, median / p99 ms", lambda s: edits(
        s.edits_big, lambda e: f"{_ms(e.served(50))} / {_ms(e.served(99))} (n={e.edits})"))
    line("big-zone edit: the commit itself, median ms",
         lambda s: edits(s.edits_big, lambda e: _ms(e.commit(50))))

    def rep(what: Callable[[live.Replacement], str]) -> Callable[[StoreFigures], str]:
        return lambda s: "-" if s.replacement is None else what(s.replacement)

    line("big-zone replacement: zone import, s", rep(lambda r: _ms(r.import_s, 1)))
    line("big-zone replacement: import done -> new data served, s", rep(lambda r: _ms(r.served_s)))
    line(f"other zones at {report.plan.replace_qps:,} q/s during the reload: p99 / max ms",
         rep(lambda r: f"{_ms(r.p99_reload_ms())} / {_ms(r.max_reload_ms())}"))
    line("other zones during the import command: p99 ms", rep(lambda r: _ms(r.p99_import_ms())))
    line(f"other zones, {live.BASELINE_S:.0f} s before the import (baseline): p99 ms",
         rep(lambda r: _ms(r.p99_baseline_ms())))
    line("other-zone queries lost during the replacement", rep(lambda r: str(r.others_lost)))
    errors = [f"{s.store}: {s.error}" for s in report.stores if s.error]
    if errors:
        lines.append("errors: " + "; ".join(errors))
    return lines


def _targets(report: Report) -> list[str]:
    zh = next((r for r in report.rows if r.name == "zonehost" and r.saturation), None)
    pdns = _find(report, "pdns")
    nsd = _find(report, "nsd")
    if zh is None or zh.saturation is None:
        return ["targets: zonehost was not measured"]
    sat = zh.saturation
    lines = ["| target (issue 3) | measured | met |", "|---|---|---|"]

    def check(label: str, measured: str, ok: bool | None) -> None:
        lines.append(f"| {label} | {measured} | {'-' if ok is None else ('yes' if ok else 'NO')} |")

    if pdns and pdns.saturation:
        ratio = sat.answers_per_cpu_s / pdns.saturation.answers_per_cpu_s
        check("answers/CPU-s >= PowerDNS-SQLite (1.0x)", f"{ratio:.2f}x", ratio >= 1.0)
        ratio_q = sat.qps / pdns.saturation.qps
        check("q/s at saturation >= PowerDNS-SQLite", f"{ratio_q:.2f}x", ratio_q >= 1.0)
    if nsd and nsd.saturation:
        ratio = sat.answers_per_cpu_s / nsd.saturation.answers_per_cpu_s
        check("answers/CPU-s, direction NSD (1.0x)", f"{ratio:.2f}x", ratio >= 1.0)
    fixed = zh.fixed
    p99 = fixed.percentile_ms(99) if fixed else None
    check(f"p99 at {report.plan.rate:,} q/s <= 2 ms", f"{_ms(p99)} ms", None if p99 is None else p99 <= 2)
    check("start to every zone answered <= 3 s", f"{_ms(zh.ready_s)} s",
          None if zh.ready_s is None else zh.ready_s <= 3)
    check("RSS per process <= 150 MiB", f"{_ms(zh.rss_mib, 1)} MiB",
          None if zh.rss_mib is None else zh.rss_mib <= 150)
    for s in report.stores:
        if s.edits_small:
            p = s.edits_small.served(99)
            check(f"edit commit -> served p99 <= 100 ms ({s.store})", f"{_ms(p)} ms",
                  None if p is None else p <= 100 and s.edits_small.timeouts == 0)
        if s.replacement:
            p = s.replacement.p99_reload_ms()
            check(f"other zones p99 <= 10 ms while the big zone is replaced ({s.store})",
                  f"{_ms(p)} ms", None if p is None else p <= 10)
    return lines


# -- main -----------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="dnsperf -l 3, fewer edits")
    p.add_argument("--database-url", action="append", metavar="URL",
                   help="zonehost store(s) to test (repeatable). Default: a SQLite file in the"
                   " temporary folder and a fresh PostgreSQL database at 127.0.0.1"
                   " (created here and dropped afterwards; a postgresql URL given here must"
                   " name a database that does not exist yet)")
    p.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL default")
    p.add_argument("--workers", default="1",
                   help="zonehost nameserver --workers values to measure, e.g. 1,2 (default 1)")
    p.add_argument("--servers", default="zonehost,nsd,knot,pdns",
                   help="which servers to run (default zonehost,nsd,knot,pdns)")
    p.add_argument("--seconds", type=int, help="dnsperf -l (default 10, --quick 3)")
    p.add_argument("--rate", type=int, help="fixed rate for the latency run (default 20000)")
    p.add_argument("--edits", type=int, help="small-zone edits per store (default 100)")
    p.add_argument("--big-edits", type=int, help="big-zone edits per store (default 20)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--big-names", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=2_000_000,
                   help="lines per query file (long enough that a run does not loop over it)")
    p.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                   help="niceness for the bench and everything it starts, also of their"
                   " scheduling autogroups (default -10 as root, so that other work on a shared"
                   " machine does not take the servers' and dnsperf's CPU)")
    p.add_argument("--profile", action="store_true",
                   help="also sample zonehost under load with py-spy (pip install py-spy)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    p.add_argument("--commit", metavar="REV",
                   help="benchmark a committed tree (git archive REV into the temporary"
                   " folder, run from there) instead of the working tree")
    return p.parse_args(argv)


def _plan(args: argparse.Namespace) -> Plan:
    base = QUICK if args.quick else FULL
    return Plan(
        seconds=args.seconds or base.seconds,
        rate=args.rate or base.rate,
        edits=args.edits if args.edits is not None else base.edits,
        big_edits=args.big_edits if args.big_edits is not None else base.big_edits,
        replace_qps=base.replace_qps,
    )


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: servers, folders, databases


def run_committed(rev: str, argv: list[str]) -> int:
    """Export `rev` with git archive and run that tree's benchmark, without --commit."""
    with tempfile.TemporaryDirectory(prefix="zonehost-bench-src-") as src:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                                 capture_output=True, check=False)
        if archive.returncode != 0:
            print(archive.stderr.decode(errors="replace"), file=sys.stderr)
            return 2
        subprocess.run(["tar", "-x", "-C", src], input=archive.stdout, check=True)
        rest = [a for i, a in enumerate(argv)
                if a != "--commit" and not a.startswith("--commit=")
                and not (i > 0 and argv[i - 1] == "--commit")]
        print(f"benchmarking {rev} ({_describe(rev)}) from {src}", file=sys.stderr, flush=True)
        try:
            return subprocess.run([sys.executable, str(Path(src) / "bench/dns/run.py"), *rest],
                                  check=False).returncode
        except KeyboardInterrupt:
            return 130


def _describe(rev: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", rev],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    if args.commit:
        return run_committed(args.commit, raw)
    plan = _plan(args)
    wanted = [s.strip() for s in args.servers.split(",") if s.strip()]
    workers = [int(w) for w in args.workers.split(",")]
    signal.signal(signal.SIGTERM, _on_sigterm)
    own_group_nice = procs.autogroup_nice(os.getpid())
    if args.nice:
        os.nice(args.nice)  # inherited by every server, dnsperf and zonehost command
        procs.NICE = args.nice
        procs.boost(os.getpid(), args.nice)  # this session: dnsperf and zonehost commands

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="zonehost-bench-"))
    started = time.monotonic()
    try:
        data = ds.generate(tmp / "data", args.customers, args.big_names, args.queries, log=log)
        report = Report(data, plan, load_before=procs.load_average(), nice=os.nice(0))
        if "zonehost" in wanted:
            urls = args.database_url or [f"sqlite+aiosqlite:///{tmp / 'zonehost.sqlite3'}"] + (
                [] if args.sqlite_only else [DEFAULT_POSTGRES.format(pid=os.getpid())])
            for url in urls:
                log(f"zonehost on {_store_name(url)}")
                try:
                    with fresh_database(url) as fresh:
                        run_zonehost(fresh, workers, data, plan, tmp, report, args, log)
                except ServerFailed as exc:
                    report.stores.append(StoreFigures(_store_name(url), error=str(exc)[:120]))
                    log(f"  skipped: {exc}")
        for name in REFERENCES:
            if name in wanted:
                log(name)
                run_reference(name, data, plan, tmp / name, report, log)
        log(f"done in {time.monotonic() - started:.0f} s")
        print(render(report))
    except KeyboardInterrupt:
        log("interrupted: cleaning up")
        return 130
    finally:
        if args.nice and own_group_nice is not None:
            procs.boost(os.getpid(), own_group_nice)  # the caller's session shares the group
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
