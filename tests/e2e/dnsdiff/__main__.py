"""Run a differential comparison by hand and write the report.

    python -m tests.e2e.dnsdiff [--left engine|zonehost|nsd|knot] [--right nsd|knot]
        [--corpus DIR]... [--report FILE]

`engine` is `python -m nameserver` on the zone files (no database); `zonehost` is the real
path on a fresh SQLite file. The default corpora are ours and ../shared/conformance/*.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from tests.refservers import (
    RunningServer,
    knot_server,
    nameserver_debug_server,
    nsd_server,
    zonehost_server,
)

from .compare import STRICT, Rules
from .corpus import load_corpus
from .report import render, summary
from .runner import run

REPO_ROOT = Path(__file__).resolve().parents[3]
Starter = Callable[[Path, Path], AbstractContextManager[RunningServer]]


def _zonehost(zone_dir: Path, workdir: Path) -> AbstractContextManager[RunningServer]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
    env["ZONEHOST_DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'zonehost.sqlite3'}"
    env["ZONEHOST_ALLOW_TRANSFER"] = "127.0.0.0/8"
    return zonehost_server(zone_dir, workdir / "zonehost", env)


RELAXED = Rules(soa_serial=False)
STARTERS: dict[str, Starter] = {
    "engine": nameserver_debug_server,
    "zonehost": _zonehost,
    "nsd": nsd_server,
    "knot": knot_server,
}


def default_corpora() -> list[Path]:
    roots = [REPO_ROOT / "tests" / "corpus", REPO_ROOT.parent / "shared" / "conformance"]
    return [p.parent for root in roots for p in sorted(root.glob("*/queries.txt"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.dnsdiff")
    parser.add_argument("--left", choices=sorted(STARTERS), default="engine")
    parser.add_argument("--right", choices=sorted(STARTERS), default="nsd")
    parser.add_argument("--corpus", type=Path, action="append")
    parser.add_argument("--report", type=Path, help="write the full report here")
    parser.add_argument("--quiet", action="store_true", help="only the summaries on stdout")
    args = parser.parse_args(argv)
    texts: list[str] = []
    failing = 0
    with tempfile.TemporaryDirectory(prefix="dnsdiff-") as tmp:
        for corpus_dir in args.corpus or default_corpora():
            corpus = load_corpus(corpus_dir)
            with ExitStack() as stack:
                work = Path(tmp) / corpus.name
                left = stack.enter_context(STARTERS[args.left](corpus_dir, work / args.left))
                right = stack.enter_context(STARTERS[args.right](corpus_dir, work / args.right))
                # zonehost numbers SOA serials itself: see test_differential.ZONEHOST_RULES.
                relaxed = "zonehost" in (args.left, args.right)
                result = run(corpus.queries, left, right, rules=RELAXED if relaxed else STRICT)
            failing += len(result.failures)
            texts.append(f"#### corpus {corpus.name}\n{render(result)}")
            print(f"{corpus.name}: {summary(result)}")
    report = "\n".join(texts)
    if args.report:
        args.report.write_text(report)
    if not args.quiet:
        sys.stdout.write(report)
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
