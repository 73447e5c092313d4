"""The servers under test, each on 127.0.0.1 and a free high port, with its
own configuration and state in a temporary folder: zonehost (through its
real command line), NSD, Knot DNS and PowerDNS with the gsqlite3 backend.

`start_*` returns a `Server` once every zone of the data set is answered
(authoritative SOA), with the time that took from process start.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.dns import probe, procs
from bench.dns.dataset import Dataset

START_TIMEOUT_S = 120.0
COMMAND_TIMEOUT_S = 1800.0


class ServerFailed(RuntimeError):
    """A server did not start, or a set-up command failed."""


@dataclass(slots=True)
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready_s: float  # process start -> every zone answered
    config: str  # a short description for the table

    def pids(self) -> list[int]:
        return procs.descendants(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        procs.stop(self.proc)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _launch(name: str, argv: list[str], workdir: Path, dataset: Dataset, port: int,
            config: str, env: dict[str, str] | None = None, sources: int = 1) -> Server:
    log_path = workdir / f"{name}.log"
    started = time.monotonic()
    proc = procs.start(argv, log_path, env=env, cwd=workdir)
    server = Server(name, port, proc, log_path, 0.0, config)
    try:
        ready = probe.wait_all_zones(port, dataset.origins, START_TIMEOUT_S, server.alive,
                                     sources)
    except BaseException:
        server.stop()
        raise
    if ready is None:
        server.stop()
        raise ServerFailed(f"{name} did not answer for every zone:\n{server.log_tail()}")
    server.ready_s = ready - started
    return server


def binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


# -- zonehost ---------------------------------------------------------------

ZONEHOST = [sys.executable, "-m", "zonehost"]
SOURCE = Path(__file__).resolve().parents[2]  # the tree under test: the one holding this file


def zonehost_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
    env["ZONEHOST_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE), *filter(None, [env.get("PYTHONPATH")])])
    return env


def zonehost_command(args: list[str], env: dict[str, str], cwd: Path) -> float:
    """Run one `zonehost` command; its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run(
        [*ZONEHOST, *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S, check=False,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise ServerFailed(
            f"zonehost {' '.join(args)} exited with {done.returncode}:\n"
            f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    return elapsed


def start_zonehost(dataset: Dataset, workdir: Path, database_url: str, workers: int = 1) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    argv = [*ZONEHOST, "nameserver", "--listen", f"127.0.0.1:{port}"]
    env = zonehost_env(database_url)
    if workers > 1:
        argv += ["--workers", str(workers)]
        # --workers alone does not turn SO_REUSEPORT on (zonehost/config.py reads only the
        # setting), so the second process fails with EADDRINUSE: set the setting too.
        env["ZONEHOST_NAMESERVER_WORKERS"] = str(workers)
    return _launch(
        "zonehost", argv, workdir, dataset, port,
        "1 process" if workers == 1 else f"--workers {workers}",
        env=env, sources=1 if workers == 1 else 8 * workers,
    )


# -- NSD --------------------------------------------------------------------

def start_nsd(dataset: Dataset, workdir: Path) -> Server:
    nsd = binary("nsd")
    if nsd is None:
        raise ServerFailed("nsd is not installed (Debian package nsd)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    zones = "".join(
        f'zone:\n    name: "{origin}"\n    zonefile: "{dataset.all_dir / (origin + "zone")}"\n'
        for origin in dataset.origins
    )
    conf = workdir / "nsd.conf"
    conf.write_text(
        "server:\n"
        f"    ip-address: 127.0.0.1@{port}\n"
        '    username: ""\n'
        '    chroot: ""\n'
        f'    zonesdir: "{dataset.all_dir}"\n'
        f'    pidfile: "{workdir / "nsd.pid"}"\n'
        f'    xfrdfile: "{workdir / "xfrd.state"}"\n'
        f'    xfrdir: "{workdir}"\n'
        f'    zonelistfile: "{workdir / "zone.list"}"\n'
        '    database: ""\n'
        "    server-count: 1\n"
        "    verbosity: 1\n"
        "    zonefiles-write: 0\n"
        "    minimal-responses: yes\n"
        "    rrl-ratelimit: 0\n"  # NSD rate-limits by default: off for a load test
        "remote-control:\n"
        "    control-enable: no\n" + zones
    )
    return _launch("nsd", [nsd, "-d", "-c", str(conf)], workdir, dataset, port,
                   "server-count 1, rrl off")


# -- Knot DNS ---------------------------------------------------------------

def start_knot(dataset: Dataset, workdir: Path) -> Server:
    knotd = binary("knotd")
    if knotd is None:
        raise ServerFailed("knotd is not installed (Debian package knot)")
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "db"):
        (workdir / sub).mkdir(exist_ok=True)
    port = procs.free_port()
    user = f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"
    zones = "".join(
        f'  - domain: "{origin}"\n    file: "{dataset.all_dir / (origin + "zone")}"\n'
        for origin in dataset.origins
    )
    conf = workdir / "knot.conf"
    conf.write_text(
        "server:\n"
        f'    rundir: "{workdir / "run"}"\n'
        f"    user: {user}\n"
        f"    listen: 127.0.0.1@{port}\n"
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "control:\n"
        f'    listen: "{workdir / "run" / "knot.sock"}"\n'
        "log:\n"
        "  - target: stderr\n"
        "    any: warning\n"
        "database:\n"
        f'    storage: "{workdir / "db"}"\n'
        "template:\n"
        "  - id: default\n"
        "    zonefile-sync: -1\n"
        "    zonefile-load: whole\n"
        "    journal-content: none\n"
        "zone:\n" + zones
    )
    return _launch("knot", [knotd, "-c", str(conf)], workdir, dataset, port, "udp-workers 1")


# -- PowerDNS ---------------------------------------------------------------

PDNS_SCHEMAS = (
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
)


def load_pdns_database(dataset: Dataset, workdir: Path) -> tuple[Path, float]:
    """A gsqlite3 database with every zone (zone2sql); its path and load time."""
    zone2sql = binary("zone2sql")
    schema = next((p for p in PDNS_SCHEMAS if p.exists()), None)
    if zone2sql is None or schema is None:
        raise ServerFailed("PowerDNS is not installed (pdns-server, pdns-backend-sqlite3)")
    started = time.monotonic()
    named = workdir / "named.conf"
    named.write_text(
        f'options {{ directory "{dataset.all_dir}"; }};\n'
        + "".join(
            f'zone "{o.rstrip(".")}" {{ type master; file "{o}zone"; }};\n'
            for o in dataset.origins
        )
    )
    sql = subprocess.run(
        [zone2sql, "--gsqlite", f"--named-conf={named}"], capture_output=True, text=True,
        timeout=COMMAND_TIMEOUT_S, check=False,
    )
    if sql.returncode != 0:
        raise ServerFailed(f"zone2sql failed:\n{sql.stderr[-2000:]}")
    database = workdir / "pdns.sqlite3"
    with sqlite3.connect(database) as conn:
        conn.executescript(schema.read_text())
        conn.executescript("BEGIN;\n" + sql.stdout + "\nCOMMIT;\n")
    return database, time.monotonic() - started


def start_pdns(dataset: Dataset, workdir: Path) -> tuple[Server, float]:
    pdns = binary("pdns_server")
    if pdns is None:
        raise ServerFailed("pdns_server is not installed (pdns-server, pdns-backend-sqlite3)")
    workdir.mkdir(parents=True, exist_ok=True)
    database, load_s = load_pdns_database(dataset, workdir)
    (workdir / "pdns.conf").write_text("")
    port = procs.free_port()
    argv = [
        pdns, f"--config-dir={workdir}", f"--socket-dir={workdir}",
        "--local-address=127.0.0.1", f"--local-port={port}",
        "--launch=gsqlite3", f"--gsqlite3-database={database}",
        "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no",
        "--loglevel=4",
    ]
    server = _launch("pdns", argv, workdir, dataset, port, "gsqlite3, default caches")
    return server, load_s
