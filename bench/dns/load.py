"""dnsperf runs and what they measured, with the server's CPU time over the run.

With `verbose`, dnsperf prints one line per response with its latency
("> NOERROR name type 0.000123"), from which percentiles are computed; a
query that timed out counts as slower than any answer.
"""

from __future__ import annotations

import math
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.dns import procs

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class PerfResult:
    sent: int
    completed: int
    lost: int
    run_s: float
    qps: float
    avg_ms: float
    max_ms: float
    stddev_ms: float
    rcodes: dict[str, int]
    cpu_s: float  # server CPU time (user + system, all its processes) over the run
    latencies_ms: tuple[float, ...] = field(default=(), repr=False)  # verbose runs only

    @property
    def answers_per_cpu_s(self) -> float:
        return self.completed / self.cpu_s if self.cpu_s > 0 else math.inf

    @property
    def cpu_share(self) -> float:
        """Server CPU time over wall time (1.0 = one core busy)."""
        return self.cpu_s / self.run_s if self.run_s > 0 else 0.0

    def percentile_ms(self, p: float, window: slice | None = None) -> float | None:
        lat = self.latencies_ms[window] if window is not None else self.latencies_ms
        return percentile(lat, p)


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return ordered[rank]


def dnsperf_binary() -> str:
    path = shutil.which("dnsperf")
    if path is None:
        raise RuntimeError("dnsperf is not installed (Debian package dnsperf)")
    return path


def argv(port: int, query_file: Path, seconds: float, *, clients: int = 4,
         outstanding: int = 500, qps: int | None = None, verbose: bool = False) -> list[str]:
    args = [dnsperf_binary(), "-s", HOST, "-p", str(port), "-d", str(query_file),
            "-c", str(clients), "-q", str(outstanding), "-l", str(seconds)]
    if qps is not None:
        args += ["-Q", str(qps)]
    if verbose:
        args.append("-v")
    return args


def run(port: int, query_file: Path, seconds: float, server_pids: Callable[[], list[int]],
        out: Path, **options: int | bool | None) -> PerfResult:
    """One dnsperf run to completion, with the server's CPU time around it."""
    pids = server_pids()
    cpu_before = procs.cpu_seconds(pids)
    with out.open("wb") as sink:
        subprocess.run(argv(port, query_file, seconds, **options),  # type: ignore[arg-type]
                       stdout=sink, stderr=subprocess.STDOUT, timeout=seconds + 120, check=True)
    cpu = procs.cpu_seconds(pids) - cpu_before
    return parse(out.read_text(errors="replace"), cpu)


class Background:
    """dnsperf at a fixed rate until stopped (SIGINT makes it print its statistics)."""

    def __init__(self, port: int, query_file: Path, qps: int, out: Path,
                 server_pids: Callable[[], list[int]], max_s: float = 1200) -> None:
        self.out = out
        self.qps = qps
        self._pids = server_pids
        self._cpu_before = procs.cpu_seconds(server_pids())
        self._sink = out.open("wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv(port, query_file, max_s, qps=qps, verbose=True, clients=1, outstanding=100),
            stdout=self._sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
        procs.boost(self.proc.pid)

    def finish(self) -> PerfResult:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            procs.stop(self.proc)
        self._sink.close()
        cpu = procs.cpu_seconds(self._pids()) - self._cpu_before
        return parse(self.out.read_text(errors="replace"), cpu)

    def index_at(self, moment: float) -> int:
        """Index of the response sent about `moment` (monotonic): sending is paced."""
        return max(0, int((moment - self.started) * self.qps))


_NUM = r"([0-9.]+)"


def _find(pattern: str, text: str, default: float = 0.0) -> float:
    match = re.search(pattern, text)
    return float(match.group(1)) if match else default


def parse(text: str, cpu_s: float) -> PerfResult:
    latencies: list[float] = []
    lost_lines = 0
    for line in text.splitlines():
        if line.startswith("> "):
            try:
                latencies.append(float(line.rsplit(None, 1)[1]) * 1000)
            except (IndexError, ValueError):
                continue
        elif "timed out" in line:
            lost_lines += 1
            latencies.append(math.inf)
    if "Statistics:" not in text:
        raise RuntimeError(f"dnsperf printed no statistics:\n{text[-2000:]}")
    rcodes = {
        code: int(count)
        for code, count in re.findall(r"([A-Z]+) (\d+) \(", _line("Response codes:", text))
    }
    avg = re.search(r"Average Latency \(s\):\s+" + _NUM + r" \(min " + _NUM + ", max " + _NUM,
                    text)
    return PerfResult(
        sent=int(_find(r"Queries sent:\s+" + _NUM, text)),
        completed=int(_find(r"Queries completed:\s+" + _NUM, text)),
        lost=int(_find(r"Queries lost:\s+" + _NUM, text)),
        run_s=_find(r"Run time \(s\):\s+" + _NUM, text),
        qps=_find(r"Queries per second:\s+" + _NUM, text),
        avg_ms=float(avg.group(1)) * 1000 if avg else 0.0,
        max_ms=float(avg.group(3)) * 1000 if avg else 0.0,
        stddev_ms=_find(r"Latency StdDev \(s\):\s+" + _NUM, text) * 1000,
        rcodes=rcodes,
        cpu_s=cpu_s,
        latencies_ms=tuple(latencies),
    )


def _line(prefix: str, text: str) -> str:
    for line in text.splitlines():
        if line.strip().startswith(prefix):
            return line
    return ""
