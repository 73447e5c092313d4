"""Processes the benchmark starts: start in their own process group, stop by
id, and read their CPU time and memory from /proc."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_TIMEOUT_S = 10.0
# Niceness for the processes started here. With CONFIG_SCHED_AUTOGROUP every
# session is its own scheduling group and groups share the CPUs equally, so
# plain nice(2) cannot lift a server above other sessions' work on a shared
# machine: the group's own niceness (/proc/PID/autogroup) is set too.
NICE = 0


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int  # VmRSS, summed over the processes
    hwm_kib: int  # VmHWM (peak), summed over the processes
    max_rss_kib: int  # the largest single process

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def max_rss_mib(self) -> float:
        return self.max_rss_kib / 1024


def start(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """Start a server in its own session so that stopping it reaches its children."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    boost(proc.pid)
    return proc


def boost(pid: int, nice: int | None = None) -> None:
    """Give the session (autogroup) of `pid` the niceness NICE; best effort."""
    value = NICE if nice is None else nice
    if value == 0 and nice is None:
        return
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(value))
    except OSError:
        pass


def autogroup_nice(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we created, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)  # children left behind, if any
        return
    _kill_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)
    _kill_group(proc.pid, signal.SIGKILL)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from the ppid field of /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _read_stat(int(entry))
        if stat is not None:
            children.setdefault(int(stat[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/pid/stat after the command name (index 0 is the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        stat = _read_stat(pid)
        if stat is not None:
            ticks += int(stat[11]) + int(stat[12])  # fields 14 and 15 of stat(5)
    return ticks / CLOCK_TICKS


def memory(pids: Sequence[int]) -> Memory:
    rss = hwm = largest = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        one = int(fields.get("VmRSS", "0 kB").split()[0])
        rss += one
        hwm += int(fields.get("VmHWM", "0 kB").split()[0])
        largest = max(largest, one)
    return Memory(rss, hwm, largest)


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return False


def add_nice_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                        help="niceness of the bench, the servers and their scheduling groups "
                             "(default -10 as root: other sessions' work on a shared machine "
                             "then takes less from the run)")


@contextmanager
def niceness(nice: int) -> Iterator[None]:
    """Run the bench and the servers it starts at `nice`, their autogroups too
    (the servers' sessions get NICE at start); the bench's group is put back."""
    global NICE
    own = autogroup_nice(os.getpid())
    if nice:
        NICE = nice
        os.nice(nice)
        boost(os.getpid(), nice)
    try:
        yield
    finally:
        if nice and own is not None:
            boost(os.getpid(), own)
