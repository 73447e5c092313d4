"""`zonehost zoneapi --listen HOST:PORT`: the zone API alone."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from typing import Any

from prometheus_client import start_http_server

from zonehost.config import Settings, parse_hostport, zoneapi_config
from zonehost.runtime import open_database

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("zoneapi", help="run the zone API alone")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="HTTP address (default: setting zoneapi_listen, 127.0.0.1:8053)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="also serve Prometheus metrics here")
    p.set_defaults(func=cmd_zoneapi)


def cmd_zoneapi(args: argparse.Namespace, settings: Settings) -> int:
    config = zoneapi_config(settings)
    if args.listen:
        config = replace(config, listen=parse_hostport(args.listen, 8053))
    metrics = parse_hostport(args.metrics, 9153) if args.metrics else None
    asyncio.run(_run(settings, config, metrics))
    return 0


async def _run(settings: Settings, config: Any, metrics: tuple[str, int] | None) -> None:
    from zonehost.api_service import start_api

    db = await open_database(settings)
    try:
        if metrics is not None:
            start_http_server(metrics[1], addr=metrics[0])
        runner = await start_api(settings, config, db)
        host, port = config.listen
        print(f"zone API on http://{host}:{port}/api/v1/", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        await db.close()
