"""The nameserver as a service: zones from the store, kept current by the
feed follower, served on every listen address."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import REGISTRY

from nameserver import metrics as ns_metrics
from nameserver.feed import FeedFollower, load_everything
from nameserver.metrics import NameserverMetrics
from nameserver.server import RunningNameserver, serve
from storage.db import Database
from zonehost.config import Settings, feed_options, nameserver_options

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DnsService:
    running: RunningNameserver
    follower: FeedFollower

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.running.addresses

    async def close(self) -> None:
        await self.follower.stop()
        self.running.close()
        await self.running.wait_closed()


async def start_dns(
    settings: Settings, db: Database, listens: Sequence[tuple[str, int]]
) -> DnsService:
    metrics = NameserverMetrics()
    try:
        ns_metrics.register(metrics, REGISTRY)
    except ValueError:  # already registered in this process (tests start several)
        pass
    table, position = await load_everything(db, metrics)
    follower = FeedFollower(db, table, position, feed_options(settings), metrics)
    await follower.catch_up()
    running = await serve(table, listens, nameserver_options(settings), metrics)
    follower.start()
    return DnsService(running, follower)
