"""`zonehost nameserver`: the nameserver alone."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from typing import Any

from prometheus_client import start_http_server

from zonehost.config import Settings, parse_hostport
from zonehost.dns_service import start_dns
from zonehost.errors import CommandError
from zonehost.runtime import open_database

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("nameserver", help="run the authoritative nameserver alone")
    p.add_argument("--listen", action="append", metavar="HOST:PORT",
                   help="UDP and TCP address (repeatable; default 127.0.0.1:5300)")
    p.add_argument("--workers", type=int, help="processes sharing the addresses (SO_REUSEPORT)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics there")
    p.set_defaults(func=cmd_nameserver)


def cmd_nameserver(args: argparse.Namespace, settings: Settings) -> int:
    listens = [
        parse_hostport(a, 53)
        for a in (args.listen or settings.list("nameserver_listen", ["127.0.0.1:5300"]))
    ]
    workers = args.workers or settings.int("nameserver_workers", 1)
    if workers < 1:
        raise CommandError("--workers must be at least 1")
    metrics = args.metrics or settings.optional_str("nameserver_metrics")
    if metrics:
        host, port = parse_hostport(metrics, 9153)
        start_http_server(port, addr=host)
    children = []
    for _ in range(workers - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(_run(settings, listens, workers, send_notify=False))
            os._exit(0)
        children.append(pid)
    try:
        asyncio.run(_run(settings, listens, workers, send_notify=True))
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
    return 0


async def _run(
    settings: Settings, listens: list[tuple[str, int]], workers: int, *, send_notify: bool
) -> None:
    db = await open_database(settings)
    try:
        try:
            service = await start_dns(
                settings, db, listens, send_notify=send_notify, workers=workers
            )
        except OSError as exc:
            raise CommandError(f"cannot listen: {exc}") from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await service.close()
    finally:
        await db.close()
