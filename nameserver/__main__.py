"""Debug entry: serve master files without a database.

    python -m nameserver --zone-file example.com.=example.com.zone \
        --listen 127.0.0.1:5353 [--listen [::1]:5353] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from nameserver.index import ZoneTable
from nameserver.options import NameserverOptions
from nameserver.rrl import RrlOptions
from nameserver.server import serve
from nameserver.zonefile import from_file

log = logging.getLogger("nameserver")


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, with IPv6 hosts in brackets: [::1]:53."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _zone_arg(text: str) -> tuple[str, Path]:
    origin, sep, path = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected ORIGIN=FILE, got {text!r}")
    return origin, Path(path)


async def _run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    zones = [from_file(path, origin, i) for i, (origin, path) in enumerate(args.zone_file)]
    table = ZoneTable.from_snapshots(zones)
    log.info("loaded %d zones in %.3f s", len(zones), time.perf_counter() - started)
    rrl = RrlOptions(rate_per_s=args.rrl) if args.rrl else None
    options = NameserverOptions(reuse_port=args.workers > 1, rrl=rrl)
    running = await serve(table, args.listen, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    running.close()
    await running.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nameserver")
    parser.add_argument("--zone-file", type=_zone_arg, action="append", default=[])
    parser.add_argument("--listen", type=parse_listen, action="append", required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rrl", type=int, default=0, help="responses/s per client network")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(process)d %(levelname)s %(message)s")
    children = []
    for _ in range(args.workers - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(_run(args))
            os._exit(0)
        children.append(pid)
    try:
        asyncio.run(_run(args))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
