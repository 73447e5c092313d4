"""PowerDNS's HTTP API as the same-run reference for the zone API's edits:
one-RRset PATCHes per second, sequentially and with concurrent clients.

    python bench/pdns_api.py                                  # gsqlite3, then gpgsql
    python bench/pdns_api.py --backend gsqlite3 --seconds 8 --clients 8
    python bench/pdns_api.py --backend gpgsql --pg-url postgresql://postgres@127.0.0.1:5432

Issue 4's targets are ratios against PowerDNS 4.7's API measured elsewhere;
this measures it on this machine, in the same run as bench/api_edits.py.
`pdns_server` (Debian's pdns-server with pdns-backend-sqlite3 / -pgsql)
runs in the foreground on 127.0.0.1 (a free port for DNS, another for its
webserver and API) with its configuration in a temporary folder, on a
fresh gsqlite3 file or on a PostgreSQL database `--pg-database` (default
zh_bench_pdns) created afresh and dropped at the end; its tables are the
package's own schema. The zone is created through the API (Native), then
each edit is a PATCH with one `REPLACE` of an A RRset with a new address
every time (as api_edits.py's PUTs), after 100 warm-up edits, 1 client
then `--clients`. Reported: successful (2xx) edits/s, errors by status and
body (e.g. 500 "database is locked"), latency p50/p99, and pdns_server's
CPU time (utime + stime of all its threads, /proc/PID/stat) per successful
edit. On gpgsql, PostgreSQL's own CPU is not counted (nor is it for
zonehost in api_edits.py). Other bench scripts call `measure_pdns()`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.dns import probe, procs
from bench.dns.servers import START_TIMEOUT_S, Server, ServerFailed, binary

ZONE = "bench.example."
BACKENDS = ("gsqlite3", "gpgsql")
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_PG_DATABASE = "zh_bench_pdns"
WARM_UP_EDITS = 100
REQUEST_TIMEOUT_S = 30.0
SQLITE_SCHEMAS = (
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
)
PGSQL_SCHEMAS = (
    Path("/usr/share/doc/pdns-backend-pgsql/schema.pgsql.sql"),
    Path("/usr/share/pdns-backend-pgsql/schema/schema.pgsql.sql"),
)


@dataclass(frozen=True, slots=True)
class PhaseResult:
    clients: int
    elapsed_s: float
    requests: int
    ok: int
    errors: dict[str, int]  # "status body" (or exception) -> count
    p50_ms: float
    p99_ms: float
    cpu_ms_per_edit: float  # pdns_server CPU per successful edit
    logged: dict[str, int]  # pdns_server's logged reasons for its 5xx ("HTTP ISE") -> count

    @property
    def edits_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """pdns_server CPU per request, failed ones included."""
        return self.cpu_ms_per_edit * self.ok / self.requests if self.requests else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class PdnsResult:
    backend: str  # with its settings, e.g. "gsqlite3 (WAL, synchronous FULL: ...)"
    version: str
    sequential: PhaseResult
    concurrent: PhaseResult
    load: str  # load average when the measurement started
    served: bool  # a last edit was answered over DNS by the same process
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Pg:
    host: str
    port: int
    user: str
    password: str
    database: str

    def dsn(self, database: str) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"


def _pg(url: str, database: str) -> _Pg:
    """`postgresql://` (or `postgresql+asyncpg://`) URL of the server; its database part is ignored."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url}")
    if not database.startswith("zh_"):
        raise ValueError("the scratch database's name must start with zh_ (it is dropped)")
    return _Pg(parts.hostname or "127.0.0.1", parts.port or 5432,
               unquote(parts.username or "postgres"), unquote(parts.password or ""), database)


def _schema(candidates: tuple[Path, ...], package: str) -> str:
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        raise ServerFailed(f"PowerDNS's schema is missing (Debian package {package})")
    return path.read_text()


def _sqlite_database(workdir: Path) -> Path:
    database = workdir / "pdns.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.executescript(_schema(SQLITE_SCHEMAS, "pdns-backend-sqlite3"))
    return database


async def _create_pg_database(pg: _Pg) -> None:
    import asyncpg

    schema = _schema(PGSQL_SCHEMAS, "pdns-backend-pgsql")
    admin = await asyncpg.connect(pg.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{pg.database}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(pg.dsn(pg.database))
    try:
        await conn.execute(schema)
    finally:
        await conn.close()


async def _drop_pg_database(pg: _Pg) -> None:
    import asyncpg

    admin = await asyncpg.connect(pg.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{pg.database}" WITH (FORCE)')
    finally:
        await admin.close()


def _start_pdns(backend: str, workdir: Path, api_key: str, pg: _Pg | None,
                sqlite_synchronous: str | None) -> tuple[Server, int]:
    """pdns_server in the foreground; the Server (DNS port) and the API's port."""
    pdns = binary("pdns_server")
    if pdns is None:
        raise ServerFailed("pdns_server is not installed (pdns-server, pdns-backend-*)")
    (workdir / "pdns.conf").write_text("")
    port, api_port = procs.free_port(), procs.free_port()
    if backend == "gsqlite3":
        launch = [f"--gsqlite3-database={_sqlite_database(workdir)}"]
        config = "gsqlite3 (WAL, synchronous FULL: SQLite's default)"
        if sqlite_synchronous:
            launch.append(f"--gsqlite3-pragma-synchronous={sqlite_synchronous}")
            config = f"gsqlite3 (WAL, synchronous {sqlite_synchronous})"
    else:
        assert pg is not None
        launch = [f"--gpgsql-host={pg.host}", f"--gpgsql-port={pg.port}",
                  f"--gpgsql-user={pg.user}", f"--gpgsql-password={pg.password}",
                  f"--gpgsql-dbname={pg.database}"]
        config = f"gpgsql ({pg.database})"
    argv = [
        pdns, f"--config-dir={workdir}", f"--socket-dir={workdir}",
        "--local-address=127.0.0.1", f"--local-port={port}",
        f"--launch={backend}", *launch,
        "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no", "--loglevel=4",
        "--webserver=yes", "--webserver-address=127.0.0.1", f"--webserver-port={api_port}",
        "--webserver-allow-from=127.0.0.1", "--webserver-loglevel=none",
        "--api=yes", f"--api-key={api_key}",
    ]
    log_path = workdir / "pdns.log"
    proc = procs.start(argv, log_path, cwd=workdir)
    return Server("pdns", port, proc, log_path, 0.0, config), api_port


async def _wait_api(server: Server, base: str, headers: dict[str, str]) -> str:
    """pdns_server's version once its API answers."""
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            if not server.alive():
                raise ServerFailed(f"pdns_server exited:\n{server.log_tail()}")
            try:
                async with http.get(f"{base}/servers/localhost") as response:
                    if response.status == 200:
                        server.ready_s = time.monotonic() - started
                        return str((await response.json()).get("version", "?"))
            except aiohttp.ClientError:
                pass
            if time.monotonic() - started > START_TIMEOUT_S:
                raise ServerFailed(f"pdns_server's API did not answer:\n{server.log_tail()}")
            await asyncio.sleep(0.1)


async def _create_zone(http: aiohttp.ClientSession, base: str) -> None:
    body = {"name": ZONE, "kind": "Native",
            "nameservers": ["ns1.host.example.", "ns2.host.example."]}
    async with http.post(f"{base}/servers/localhost/zones", json=body) as response:
        text = await response.text()
        if response.status != 201:
            raise ServerFailed(f"zone creation: {response.status} {text[:300]}")


def _address(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def _patch(name: str, address: str) -> dict[str, object]:
    return {"rrsets": [{
        "name": f"{name}.{ZONE}", "type": "A", "ttl": 300, "changetype": "REPLACE",
        "records": [{"content": address, "disabled": False}],
    }]}


async def _client(http: aiohttp.ClientSession, url: str, names: list[str], deadline: float,
                  counter: list[int], latencies: list[float], errors: Counter[str],
                  limit: int | None = None) -> None:
    i = 0
    while time.perf_counter() < deadline and (limit is None or i < limit):
        i += 1
        n = counter[0] = counter[0] + 1
        body = _patch(names[i % len(names)], _address(n))
        started = time.perf_counter()
        try:
            async with http.patch(url, json=body) as response:
                text = await response.text()
                if not 200 <= response.status < 300:
                    errors[f"{response.status} {text.strip()[:100]}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            errors[f"{type(exc).__name__} {str(exc)[:80]}"] += 1
        latencies.append(time.perf_counter() - started)


async def _phase(url: str, headers: dict[str, str], clients: int, seconds: float,
                 server: Server) -> PhaseResult:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    counter = [0]
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, headers=headers,
                                     timeout=timeout) as http:
        pids = server.pids()
        log_offset = server.log_path.stat().st_size
        deadline = time.perf_counter() + seconds
        cpu_before = procs.cpu_seconds(pids)
        started = time.perf_counter()
        await asyncio.gather(*(
            _client(http, url, [f"c{c}-{k}" for k in range(20)], deadline, counter, latencies,
                    errors)
            for c in range(clients)))
        elapsed = time.perf_counter() - started
        cpu_s = procs.cpu_seconds(pids) - cpu_before
    done = len(latencies)
    ok = done - sum(errors.values())
    q = statistics.quantiles(latencies, n=100) if done > 1 else [0.0] * 99
    return PhaseResult(clients, elapsed, done, ok, dict(errors.most_common()), q[49] * 1000,
                       q[98] * 1000, cpu_s / ok * 1000 if ok else float("nan"),
                       _logged_errors(server.log_path, log_offset))


def _logged_errors(log_path: Path, offset: int) -> dict[str, int]:
    """The reasons pdns_server logged for its HTTP 500s since `offset` (its 500
    body says only "Internal Server Error"), the RRset's name left out."""
    with log_path.open("rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    reasons: Counter[str] = Counter()
    for line in text.splitlines():
        if "HTTP ISE" in line:
            reason = line.split("Exception: ", 1)[-1] if "Exception: " in line else line
            reasons[re.sub(r"RRSet \S+", "RRSet ...", reason)[:160]] += 1
    return dict(reasons.most_common())


async def _served(http: aiohttp.ClientSession, url: str, port: int) -> bool:
    """One more edit, then its new address is asked of pdns_server's DNS port."""
    address = "192.0.2.77"
    async with http.patch(url, json=_patch("served", address)) as response:
        await response.read()
        if not 200 <= response.status < 300:
            return False
    lookup = probe.Lookup(port, f"served.{ZONE}")
    try:
        return await asyncio.to_thread(
            probe.wait_served, lookup, address, time.perf_counter(), 5.0) is not None
    finally:
        lookup.close()


async def measure_pdns(backend: str, seconds: float, clients: int, pg_url: str | None = None,
                       pg_database: str = DEFAULT_PG_DATABASE,
                       sqlite_synchronous: str | None = None) -> PdnsResult:
    """Start pdns_server on `backend` (gsqlite3 or gpgsql), create the zone through
    its API, measure one-RRset PATCHes for `seconds` with 1 client then `clients`;
    everything it started (process, temp folder, PostgreSQL database) is gone after.
    `sqlite_synchronous`: gsqlite3's PRAGMA synchronous (SQLite's default FULL
    fsyncs the WAL at every commit; zonehost's store runs NORMAL)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    pg = _pg(pg_url or DEFAULT_PG_URL, pg_database) if backend == "gpgsql" else None
    api_key = secrets.token_urlsafe(24)
    headers = {"X-API-Key": api_key}
    with tempfile.TemporaryDirectory(prefix="zh_bench_pdns_") as tmp:
        try:
            if pg is not None:
                await _create_pg_database(pg)
            server, api_port = _start_pdns(backend, Path(tmp), api_key, pg,
                                           sqlite_synchronous)
            try:
                base = f"http://127.0.0.1:{api_port}/api/v1"
                version = await _wait_api(server, base, headers)
                url = f"{base}/servers/localhost/zones/{ZONE}"
                async with aiohttp.ClientSession(headers=headers) as http:
                    await _create_zone(http, base)
                    errors: Counter[str] = Counter()
                    await _client(http, url, ["warm"], time.perf_counter() + 60, [0], [],
                                  errors, limit=WARM_UP_EDITS)
                load = procs.load_average()
                sequential = await _phase(url, headers, 1, seconds, server)
                concurrent = await _phase(url, headers, clients, seconds, server)
                async with aiohttp.ClientSession(headers=headers) as http:
                    served = await _served(http, url, server.port)
                notes = [f"warm-up errors: {dict(errors)}"] if errors else []
                if not server.alive():
                    notes.append("pdns_server died:\n" + server.log_tail())
                return PdnsResult(server.config, version, sequential, concurrent, load, served, notes)
            finally:
                server.stop()
        finally:
            if pg is not None:
                await _drop_pg_database(pg)


def describe(result: PdnsResult) -> str:
    lines = [(f"PowerDNS {result.version} {result.backend} (load {result.load}), "
              f"an edit answered over DNS after: {'yes' if result.served else 'NO'}")]
    for phase in (result.sequential, result.concurrent):
        lines.append(
            f"  {phase.clients} client(s): {phase.edits_per_s:7.1f} edits/s ok, "
            f"{phase.error_count} errors of {phase.requests} "
            f"({phase.error_count / max(phase.requests, 1):.0%}), "
            f"latency p50 {phase.p50_ms:.1f} ms p99 {phase.p99_ms:.1f} ms, "
            f"pdns_server CPU {phase.cpu_ms_per_edit:.2f} ms/edit ok "
            f"({phase.cpu_ms_per_request:.2f} ms/request)")
        for error, count in list(phase.errors.items())[:3]:
            lines.append(f"    {count} x {error}")
        for reason, count in list(phase.logged.items())[:3]:
            lines.append(f"    logged {count} x {reason}")
    lines.extend(result.notes)
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="the PostgreSQL server for gpgsql (its database part is ignored)")
    parser.add_argument("--pg-database", default=DEFAULT_PG_DATABASE,
                        help="scratch database, created afresh and dropped (zh_*)")
    parser.add_argument("--sqlite-synchronous", choices=["OFF", "NORMAL", "FULL"],
                        help="gsqlite3's PRAGMA synchronous (default: SQLite's, FULL; "
                             "zonehost's store runs NORMAL)")
    procs.add_nice_argument(parser)
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    with procs.niceness(args.nice):
        for backend in backends:
            result = await measure_pdns(backend, args.seconds, args.clients, args.pg_url,
                                        args.pg_database, args.sqlite_synchronous)
            print(describe(result) + f"\n  (nice {args.nice}, --seconds {args.seconds:g})",
                  flush=True)


if __name__ == "__main__":
    asyncio.run(main())
