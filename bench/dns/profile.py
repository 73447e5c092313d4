"""Where zonehost's nameserver spends its CPU under the benchmark's load:
py-spy samples the process during an extra dnsperf run (not one of the
measured runs), and the collapsed stacks are summed per function."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bench.dns import load

if TYPE_CHECKING:
    from bench.dns.dataset import Dataset
    from bench.dns.run import Plan
    from bench.dns.servers import Server

TOP = 18

REPO_ROOT = Path(__file__).resolve().parents[2]


def _py_spy() -> str | None:
    return shutil.which("py-spy") or next(
        (str(p) for p in [Path(sys.executable).parent / "py-spy"] if p.exists()), None
    )


def _function(frame: str) -> str:
    """'answer (nameserver/answer.py:120)' -> 'nameserver/answer.py:answer'."""
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    for marker in (f"{REPO_ROOT}/", "site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{name}"


def summarize(collapsed: str) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_function(f) for f in stack.split(";") if f]
        frames = [f for f in frames if not f.startswith("process ") and not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    return total, own, inclusive


def top_functions(server: Server, data: Dataset, plan: Plan, workdir: Path,
                  log: Callable[[str], None]) -> str | None:
    spy = _py_spy()
    if spy is None:
        log("  profile: py-spy not found (pip install py-spy)")
        return None
    seconds = max(plan.seconds, 5)
    out = workdir / "zonehost-profile.txt"
    log(f"  profiling zonehost under saturation load for {seconds} s (py-spy) ...")
    result: dict[str, load.PerfResult] = {}

    def drive() -> None:
        result["run"] = load.run(server.port, data.profile_file, seconds + 1, server.pids,
                                 workdir / "profile-dnsperf.txt")

    driver = threading.Thread(target=drive)
    driver.start()
    done = subprocess.run(
        [spy, "record", "--pid", str(server.proc.pid), "--duration", str(seconds),
         "--rate", "250", "--format", "raw", "--nonblocking", "--output", str(out)],
        capture_output=True, text=True, timeout=seconds + 60, check=False,
    )
    driver.join()
    if done.returncode != 0 or not out.exists():
        log(f"  profile: py-spy failed: {done.stderr.strip()[-300:]}")
        return None
    total, own, inclusive = summarize(out.read_text())
    if not total:
        return None
    lines = [
        (f"zonehost CPU profile under saturation (py-spy, {total} samples over {seconds} s while"
        f" dnsperf ran at {result['run'].qps:,.0f} q/s with the profiler attached):"),
        "| function | self % | total % |", "|---|--:|--:|",
    ]
    for name, count in own.most_common(TOP):
        lines.append(f"| {name} | {100 * count / total:.1f} | {100 * inclusive[name] / total:.1f} |")
    return "\n".join(lines)
