"""Wiring for `zonehost serve`: one process, every service, one store."""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from prometheus_client import start_http_server

from billing.scheduler import run_every_day
from mx_forwarder.errors import ForwarderError
from mx_forwarder.service import start_forwarder
from storage import zones as store
from storage.db import Database
from storage.dnsdata import masterfile, zone_origin
from storage.zones import OPERATOR
from zonehost.api_service import start_api
from zonehost.config import (
    Settings,
    billing_config,
    forwarder_config,
    parse_hostport,
    zoneapi_config,
)
from zonehost.dns_service import start_dns
from zonehost.errors import CommandError
from zonehost.runtime import open_database

log = logging.getLogger(__name__)

DEMO_ZONE = Path(__file__).parent / "demo" / "demo.test.zone"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    dns: tuple[tuple[str, int], ...]
    http: tuple[str, int]
    smtp: tuple[str, int]
    metrics: tuple[str, int]
    demo: bool

    @classmethod
    def from_settings(
        cls, settings: Settings, *, dns: list[str] | None, http: str | None, smtp: str | None,
        metrics: str | None, demo: bool,
    ) -> ServeOptions:
        dns_listen = dns or settings.list("dns_listen", ["127.0.0.1:5300"])
        return cls(
            dns=tuple(parse_hostport(a, 53) for a in dns_listen),
            http=parse_hostport(http or settings.str("http_listen", "127.0.0.1:8053"), 80),
            smtp=parse_hostport(smtp or settings.str("smtp_listen", "127.0.0.1:2525"), 25),
            metrics=parse_hostport(
                metrics or settings.str("metrics_listen", "127.0.0.1:9153"), 9153
            ),
            demo=demo and settings.bool("demo_zone", True),
        )


async def load_demo_zone(db: Database) -> None:
    """Import the demo zone into an empty store, so `dig` answers at once."""
    async with db.write() as session:
        if await store.list_zones(session):
            return
        origin = zone_origin("demo.test")
        content = masterfile.from_text(DEMO_ZONE.read_text(), origin)
        await store.replace_zone(session, content, OPERATOR)
    log.info("loaded the demo zone demo.test.")


async def run_serve(settings: Settings, options: ServeOptions) -> None:
    db = await open_database(settings, migrate=True)
    async with AsyncExitStack() as running:
        running.push_async_callback(db.close)
        if options.demo:
            await load_demo_zone(db)
        try:
            start_http_server(options.metrics[1], addr=options.metrics[0])
            log.info("metrics on http://%s:%d/metrics", *options.metrics)
            dns = await start_dns(settings, db, options.dns)
            running.push_async_callback(dns.close)
            try:
                mail = await start_forwarder(
                    replace(forwarder_config(settings), listen=options.smtp), db
                )
            except ForwarderError as exc:  # e.g. a signing key that cannot be read
                raise CommandError(f"cannot start the mail forwarder: {exc}") from exc
            running.push_async_callback(mail.close)
            log.info("mail forwarder on %s port %d", *options.smtp)
            api = await start_api(
                settings, replace(zoneapi_config(settings), listen=options.http), db
            )
            running.push_async_callback(api.cleanup)
            log.info("zone API on http://%s:%d/api/v1/", *options.http)
        except OSError as exc:  # an address in use, a port below 1024 without the right
            raise CommandError(f"cannot listen: {exc}") from exc
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_every_day(billing_config(settings), db, stop)
