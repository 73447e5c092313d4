"""DNS servers on ephemeral loopback ports for differential tests: the references (NSD,
Knot DNS) and the server under test (zonehost, through its real command line).

Each server gets its own configuration, state and zone copies in a temporary folder, serves
every ``<origin>.zone`` file of a folder, is waited for until it answers SOA for each zone,
and is stopped afterwards. A missing binary (or zonehost command) raises
``ServerUnavailable``, on which tests skip. NSD runs with ``minimal-responses: yes``: its
default adds the apex NS RRset to every positive answer, which Knot (and RFC 1034) do not.
Both run as the current user (root here): NSD with ``username: ""``, Knot with
``user: <user>:<group>`` of the current process, so neither tries to drop privileges or chroot.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

HOST = "127.0.0.1"
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
START_ATTEMPTS = 3


class ServerUnavailable(RuntimeError):
    """The server's binary is not installed."""


class ServerFailed(RuntimeError):
    """The server did not start or did not load its zones."""


@dataclass(frozen=True, slots=True)
class RunningServer:
    name: str
    host: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)


def find_binary(name: str) -> str:
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if path is None:
        raise ServerUnavailable(
            f"{name} is not installed (Debian package: see tests/refservers.py)"
        )
    return path


def free_port(host: str = HOST) -> int:
    """A port free for both UDP and TCP right now (the server binds it a moment later)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise ServerFailed("no free port found")


def zone_files(zone_dir: Path) -> dict[str, Path]:
    """origin (absolute, lower-case) -> zone file, from ``<origin>.zone`` names."""
    zones = {}
    for path in sorted(zone_dir.glob("*.zone")):
        stem = path.name[: -len(".zone")].rstrip(".")
        zones[(stem + ".").lower() if stem else "."] = path
    if not zones:
        raise ServerFailed(f"{zone_dir}: no <origin>.zone files")
    return zones


def wait_for_zones(
    host: str,
    port: int,
    origins: Sequence[str],
    proc: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Block until every origin is answered with its SOA, authoritatively, over UDP."""
    deadline = time.monotonic() + timeout_s
    pending = list(origins)
    while pending:
        if proc is not None and proc.poll() is not None:
            raise ServerFailed(f"exited with {proc.returncode}:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServerFailed(f"zones not served after {timeout_s}s: {pending}\n{_tail(log_path)}")
        query = dns.message.make_query(pending[0], dns.rdatatype.SOA)
        query.flags &= ~dns.flags.RD
        try:
            reply = dns.query.udp(query, host, port=port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            time.sleep(0.05)
            continue
        if (
            reply.rcode() == dns.rcode.NOERROR
            and reply.flags & dns.flags.AA
            and any(r.rdtype == dns.rdatatype.SOA for r in reply.answer)
        ):
            pending.pop(0)
        else:
            time.sleep(0.05)


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _copy_zones(zone_dir: Path, workdir: Path) -> dict[str, Path]:
    target = workdir / "zones"
    target.mkdir(parents=True, exist_ok=True)
    copied = {}
    for origin, path in zone_files(zone_dir).items():
        copied[origin] = target / path.name
        shutil.copyfile(path, copied[origin])
    return copied


@contextmanager
def _supervised(
    name: str,
    make_argv: Callable[[int], list[str]],
    origins: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[RunningServer]:
    """Start on a free port (another one if the server exits, e.g. the port was taken)."""
    for attempt in range(START_ATTEMPTS):
        port = free_port()
        argv = make_argv(port)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
            )
        try:
            wait_for_zones(HOST, port, origins, proc, log_path, timeout_s)
        except ServerFailed:
            exited = proc.poll() is not None
            stop(proc)
            if exited and attempt + 1 < START_ATTEMPTS:
                continue
            raise
        break
    try:
        yield RunningServer(name=name, host=HOST, port=port, process=proc, log_path=log_path)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


@contextmanager
def nsd_server(zone_dir: Path, workdir: Path) -> Iterator[RunningServer]:
    """NSD 4.6 serving every zone in zone_dir, AXFR allowed from loopback."""
    binary = find_binary("nsd")
    workdir.mkdir(parents=True, exist_ok=True)
    zones = _copy_zones(zone_dir, workdir)
    zone_blocks = "".join(
        f'zone:\n    name: "{origin}"\n    zonefile: "{path}"\n    provide-xfr: 127.0.0.0/8 NOKEY\n'
        for origin, path in zones.items()
    )
    conf = workdir / "nsd.conf"

    def write_conf(port: int) -> list[str]:
        conf.write_text(
            "server:\n"
            f"    ip-address: {HOST}@{port}\n"
            f"    port: {port}\n"
            '    username: ""\n'
            '    chroot: ""\n'
            f'    zonesdir: "{workdir / "zones"}"\n'
            f'    pidfile: "{workdir / "nsd.pid"}"\n'
            f'    xfrdfile: "{workdir / "xfrd.state"}"\n'
            f'    xfrdir: "{workdir}"\n'
            f'    zonelistfile: "{workdir / "zone.list"}"\n'
            '    database: ""\n'
            "    server-count: 1\n"
            "    reuseport: no\n"
            "    verbosity: 1\n"
            "    hide-version: yes\n"
            "    hide-identity: yes\n"
            "    zonefiles-write: 0\n"
            "    minimal-responses: yes\n"
            # NSD rate-limits by default (200 answers/s per name and /24): off for test floods.
            "    rrl-ratelimit: 0\n"
            "remote-control:\n"
            "    control-enable: no\n" + zone_blocks
        )
        return [binary, "-d", "-c", str(conf)]

    log_path = workdir / "nsd.log"
    with _supervised("nsd", write_conf, list(zones), log_path) as s:
        yield s


def _user_and_group() -> str:
    # knotd wants names here, not numeric ids.
    return f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"


@contextmanager
def knot_server(zone_dir: Path, workdir: Path) -> Iterator[RunningServer]:
    """Knot DNS 3.2 serving every zone in zone_dir, AXFR allowed from loopback."""
    binary = find_binary("knotd")
    workdir.mkdir(parents=True, exist_ok=True)
    zones = _copy_zones(zone_dir, workdir)
    for sub in ("run", "db"):
        (workdir / sub).mkdir(exist_ok=True)
    zone_blocks = "".join(
        f'  - domain: "{origin}"\n    file: "{path}"\n' for origin, path in zones.items()
    )
    conf = workdir / "knot.conf"

    def write_conf(port: int) -> list[str]:
        conf.write_text(
            "server:\n"
            f'    rundir: "{workdir / "run"}"\n'
            f"    user: {_user_and_group()}\n"
            f"    listen: {HOST}@{port}\n"
            f'    pidfile: "{workdir / "knot.pid"}"\n'
            "    udp-workers: 1\n"
            "    tcp-workers: 1\n"
            "    background-workers: 1\n"
            '    identity: ""\n'
            '    version: ""\n'
            "control:\n"
            f'    listen: "{workdir / "run" / "knot.sock"}"\n'
            "log:\n"
            "  - target: stderr\n"
            "    any: info\n"
            "database:\n"
            f'    storage: "{workdir / "db"}"\n'
            "acl:\n"
            "  - id: loopback_xfr\n"
            "    address: 127.0.0.0/8\n"
            "    action: transfer\n"
            "template:\n"
            "  - id: default\n"
            "    acl: loopback_xfr\n"
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
            "    semantic-checks: off\n"
            "zone:\n" + zone_blocks
        )
        return [binary, "-c", str(conf)]

    log_path = workdir / "knot.log"
    with _supervised("knot", write_conf, list(zones), log_path) as s:
        yield s


ZONEHOST_CLI = [sys.executable, "-m", "zonehost"]
ZONEHOST_START_TIMEOUT_S = 60.0
ZONEHOST_COMMAND_TIMEOUT_S = 300.0


@functools.cache
def zonehost_missing(*commands: tuple[str, ...]) -> str | None:
    """Why the zonehost CLI cannot run these sub-commands yet, or None if it can."""
    for command in commands:
        try:
            done = subprocess.run(
                [*ZONEHOST_CLI, *command, "--help"],
                check=False,
                capture_output=True,
                timeout=60,
                text=True,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"`zonehost {' '.join(command)}` does not run: {exc}"
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            what = "does not exist yet" if "invalid choice" in last else "does not run yet"
            return f"`zonehost {' '.join(command)}` {what}: {last}"
    return None


def zonehost_command(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """Run one `zonehost` command to completion; its output, or ServerFailed with it."""
    done = subprocess.run(
        [*ZONEHOST_CLI, *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=ZONEHOST_COMMAND_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise ServerFailed(
            f"`zonehost {' '.join(args)}` exited with {done.returncode}:\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


@contextmanager
def zonehost_server(zone_dir: Path, workdir: Path, env: dict[str, str]) -> Iterator[RunningServer]:
    """zonehost's nameserver, the real way: `db upgrade`, `zone import-dir`, `nameserver`.

    `env` carries ZONEHOST_DATABASE_URL (a fresh database) and any other settings.
    """
    missing = zonehost_missing(("db", "upgrade"), ("zone", "import-dir"), ("nameserver",))
    if missing is not None:
        raise ServerUnavailable(missing)
    workdir.mkdir(parents=True, exist_ok=True)
    zones = _copy_zones(zone_dir, workdir)
    zonehost_command(["db", "upgrade"], env, workdir)
    zonehost_command(["zone", "import-dir", str(workdir / "zones")], env, workdir)

    def argv(port: int) -> list[str]:
        return [*ZONEHOST_CLI, "nameserver", "--listen", f"{HOST}:{port}"]

    log_path = workdir / "zonehost.log"
    with _supervised(
        "zonehost",
        argv,
        list(zones),
        log_path,
        env=env,
        cwd=workdir,
        timeout_s=ZONEHOST_START_TIMEOUT_S,
    ) as server:
        yield server


@contextmanager
def nameserver_debug_server(zone_dir: Path, workdir: Path) -> Iterator[RunningServer]:
    """zonehost's answer engine without the store: `python -m nameserver --zone-file ...`.

    For quick diffs while developing; the suite's differential test uses zonehost_server.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    zones = _copy_zones(zone_dir, workdir)
    files = [arg for item in zones.items() for arg in ("--zone-file", "=".join(map(str, item)))]

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "nameserver", "--listen", f"{HOST}:{port}", *files]

    log_path = workdir / "nameserver.log"
    with _supervised(
        "zonehost-engine", argv, list(zones), log_path, timeout_s=ZONEHOST_START_TIMEOUT_S
    ) as server:
        yield server
