"""Run a Python module under cProfile with a CPU-time clock (the main
thread's, so time spent waiting for the database or the network does not
count) and write the stats when it exits.

    python bench/cpu_profile.py OUT.pstats zonehost zoneapi --listen 127.0.0.1:8053

Read them with `python -m pstats OUT.pstats` (sort tottime / cumulative).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, module, *args = sys.argv[1:]
    sys.argv = [module, *args]
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
