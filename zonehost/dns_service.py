"""The nameserver as a service: zones from the store, kept current by the
feed follower, served on every listen address, transferred to secondaries
and announced to them with NOTIFY."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from prometheus_client import REGISTRY

from nameserver import metrics as ns_metrics
from nameserver.feed import FeedFollower, load_everything
from nameserver.metrics import NameserverMetrics
from nameserver.notify import Notifier, NotifyResponder
from nameserver.server import RunningNameserver, serve
from nameserver.xfr import TransferConfig, TransferConfigError, TransferService
from storage.db import Database, connect
from zonehost.config import Settings, feed_options, nameserver_options
from zonehost.errors import CommandError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DnsService:
    running: RunningNameserver
    follower: FeedFollower
    notifier: Notifier | None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.running.addresses

    async def close(self) -> None:
        await self.follower.stop()
        if self.follower.status_db is not self.follower.db:
            await self.follower.status_db.close()
        if self.notifier is not None:
            await self.notifier.close()
        self.running.close()
        await self.running.wait_closed()


def transfer_config(settings: Settings) -> TransferConfig:
    """allow_transfer, tsig_keys, notify, notify_tsig_key (ZONEHOST_ALLOW_TRANSFER, ...)."""
    try:
        return TransferConfig.from_texts(
            allow_transfer=settings.list("allow_transfer", []),
            tsig_keys=settings.list("tsig_keys", []),
            notify=settings.list("notify", []),
            notify_tsig_key=settings.optional_str("notify_tsig_key"),
        )
    except TransferConfigError as exc:
        raise CommandError(str(exc)) from exc


async def start_dns(
    settings: Settings, db: Database, listens: Sequence[tuple[str, int]], *,
    send_notify: bool = True, workers: int = 1,
) -> DnsService:
    """Load every zone, start following the feed and serve. With several
    worker processes (SO_REUSEPORT) only one should `send_notify`."""
    xfr = transfer_config(settings)
    options = nameserver_options(settings)
    if workers > 1:
        options = replace(options, reuse_port=True)
    metrics = NameserverMetrics()
    try:
        ns_metrics.register(metrics, REGISTRY)
    except ValueError:  # already registered in this process (tests start several)
        pass
    table, position = await load_everything(db, metrics)
    notifier = Notifier(xfr.notify, key=xfr.notify_key) if send_notify and xfr.notify else None
    status_url = settings.optional_str("nameserver_status_database_url")
    status_db = connect(status_url) if status_url else None
    follower = FeedFollower(
        db, table, position, feed_options(settings), metrics,
        on_zone_changed=[notifier.zone_changed] if notifier is not None else [],
        status_db=status_db,
    )
    await follower.catch_up()
    running = await serve(
        table, listens, options, metrics,
        notify=NotifyResponder(table), transfers=TransferService(db, table, xfr, metrics),
    )
    follower.start()
    return DnsService(running, follower, notifier)
