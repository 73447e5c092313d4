"""`zonehost serve`: every service in one process, for a single machine."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from zonehost.config import Settings
from zonehost.serve import ServeOptions, run_serve


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="run nameserver, API and mail forwarder together (creates the schema)"
    )
    p.add_argument("--dns", action="append", metavar="HOST:PORT",
                   help="DNS address, UDP and TCP (default 127.0.0.1:5300; repeatable)")
    p.add_argument("--http", metavar="HOST:PORT", help="API address (default 127.0.0.1:8053)")
    p.add_argument("--smtp", metavar="HOST:PORT", help="SMTP address (default 127.0.0.1:2525)")
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help="Prometheus metrics address (default 127.0.0.1:9153)")
    p.add_argument("--no-demo", action="store_true", help="do not load the demo zone")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    options = ServeOptions.from_settings(
        settings, dns=args.dns, http=args.http, smtp=args.smtp, metrics=args.metrics,
        demo=not args.no_demo,
    )
    asyncio.run(run_serve(settings, options))
    return 0
