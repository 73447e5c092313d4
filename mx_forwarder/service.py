"""Running the forwarder: `start_forwarder(config, db)` starts the SMTP
server and the delivery workers and returns a handle to close them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url

from mx_forwarder.aliascache import AliasCache
from mx_forwarder.authres import DnsAuthChecker
from mx_forwarder.config import ForwarderConfig
from mx_forwarder.delivery import DeliveryService, MxResolver, Sender
from mx_forwarder.dnscache import DnsCache
from mx_forwarder.errors import ForwarderError
from mx_forwarder.limits import ClientLimits
from mx_forwarder.overload import OverloadGuard, OverloadSettings
from mx_forwarder.policy import StorePolicy
from mx_forwarder.queue import QueueWriter, sweep_spool, waiting
from mx_forwarder.signing import Signer, SigningSettings, watch_published_key
from mx_forwarder.smtp import ForwarderHandler, SmtpSettings, start_smtp_server, tls_context
from mx_forwarder.spool import Spool
from mx_forwarder.srs import Srs
from storage.db import Database, connect

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ForwarderHandle:
    config: ForwarderConfig
    server: asyncio.Server | None
    delivery: DeliveryService | None
    writer: QueueWriter
    queue_db: Database | None  # our own engine, closed with us
    overload: OverloadGuard | None = None
    key_check: asyncio.Task[None] | None = None  # is our DKIM key published?

    @property
    def port(self) -> int | None:
        """The SMTP port actually bound (useful with port 0)."""
        if self.server is None or not self.server.sockets:
            return None
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.key_check is not None:
            self.key_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.key_check
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.overload is not None:
            await self.overload.close()
        await self.writer.close()
        if self.delivery is not None:
            await self.delivery.close()
        if self.queue_db is not None:
            await self.queue_db.close()


def _durable_sqlite(db: Database) -> Database:
    """A second engine on the same SQLite file whose commits fsync (synchronous=FULL).

    The shared engine runs synchronous=NORMAL, which survives a killed
    process but not a power cut; the 250 after DATA promises both.
    """
    queue_db = connect(db.url)

    @event.listens_for(queue_db.engine.sync_engine, "connect")
    def _full(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return queue_db


def queue_folders(config: ForwarderConfig, db: Database) -> tuple[str, ...]:
    """Where the queue is written on this host: the SQLite file's folder, the spool."""
    folders = []
    if db.is_sqlite:
        name = make_url(db.url).database
        if name and name != ":memory:":
            folders.append(os.path.dirname(os.path.abspath(name)))
    if config.spool_dir:
        folders.append(config.spool_dir)
    return tuple(dict.fromkeys(folders))


def overload_guard(config: ForwarderConfig, db: Database, writer: QueueWriter) -> OverloadGuard:
    settings = OverloadSettings(
        high=config.overload_high, low=min(config.overload_low, config.overload_high),
        tarpit_from=config.overload_tarpit_from,
        tarpit_max_delay_s=config.overload_tarpit_max_delay_s,
        min_free_bytes=config.min_free_bytes, check_s=config.overload_check_s,
        paths=queue_folders(config, db), max_write_wait_s=config.overload_write_wait_s,
    )

    async def count() -> int:
        async with db.read() as session:
            return await waiting(session)

    return OverloadGuard(settings, count, write_wait=writer.oldest_wait_s)


def signer(config: ForwarderConfig) -> Signer | None:
    """Our DKIM/ARC signer when either is turned on; ForwarderError when it cannot work."""
    if not (config.sign_dkim or config.sign_arc):
        return None
    if config.sign_arc and not config.auth_results:
        raise ForwarderError("mx_forwarder_sign_arc needs mx_forwarder_auth_results: "
                             "the ARC seal carries them")
    if not config.signing_key_file:
        raise ForwarderError("set mx_forwarder_signing_key_file to sign forwarded mail")
    try:
        with open(config.signing_key_file, "rb") as f:
            pem = f.read()
    except OSError as exc:
        raise ForwarderError(f"cannot read {config.signing_key_file}: {exc.strerror}") from exc
    return Signer(SigningSettings(
        domain=config.signing_domain or config.srs_domain, selector=config.signing_selector,
        key_pem=pem, authserv_id=config.hostname, dkim=config.sign_dkim, arc=config.sign_arc,
    ))


async def start_forwarder(config: ForwarderConfig, db: Database) -> ForwarderHandle:
    # aiosmtpd logs every command at INFO: eight lines per message, a measurable
    # share of the CPU at a few hundred messages a second. We log each message once.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if not config.srs_keys:
        raise ForwarderError("set mx_forwarder_srs_keys: SRS needs a secret key")
    srs = Srs(config.srs_domain.lower().rstrip("."), config.srs_keys, config.srs_max_age_days)
    signatures = signer(config)
    queue_db = _durable_sqlite(db) if db.is_sqlite and config.sync_commit else None
    qdb = queue_db or db
    spool = Spool(config.spool_dir) if config.spool_dir else None
    if spool is not None and (swept := await sweep_spool(qdb, spool)):
        log.warning("removed %d spool files no queued message names", swept)
    # One SQLite file, two engines: writes take turns here rather than in
    # SQLite's busy handler, which sleeps (1 ms, 2 ms, 5 ms ...) when it waits.
    gate = asyncio.Lock()
    dns_cache = DnsCache(config.resolver, config.dns_timeout_s)  # one for the whole process
    delivery = None
    if config.run_delivery:
        mx = MxResolver(dns_cache, config.transport, config.delivery_port)
        delivery = DeliveryService(config, db, Sender(config, mx),
                                   gate if queue_db is not None else None, signatures)
        delivery.start()
    writer = QueueWriter(qdb, spool, config.spool_threshold_bytes,
                         handoff=delivery, gate=gate)
    server = None
    overload = None
    if config.run_smtp:
        tls = (tls_context(config.tls_cert, config.tls_key)
               if config.tls_cert and config.tls_key else None)
        settings = SmtpSettings(
            hostname=config.hostname, max_message_bytes=config.max_message_bytes,
            max_recipients=config.max_recipients, max_hops=config.max_hops,
            command_timeout_s=config.command_timeout_s, data_timeout_s=config.data_timeout_s,
            tls=tls,
        )
        limits = ClientLimits(config.max_connections, config.max_connections_per_client,
                              config.max_messages_per_client_per_minute)
        auth = (DnsAuthChecker(config.hostname, config.resolver, min(config.dns_timeout_s, 3.0),
                               cache=dns_cache)
                if config.auth_results else None)
        cache = AliasCache(db, config.alias_cache_check_s, config.alias_cache_max_age_s)
        overload = overload_guard(config, db, writer)
        handler = ForwarderHandler(settings, StorePolicy(cache, srs), writer, srs, limits, auth,
                                   overload if overload.enabled else None, signatures)
        if overload.enabled:
            try:  # a queue already over the mark is refused from the first MAIL on
                await overload.refresh()
            except Exception as exc:  # noqa: BLE001  (its loop tries again)
                log.error("cannot count the queue: %s", exc)
        try:
            server = await start_smtp_server(handler, *config.listen)
        except OSError:
            if delivery is not None:
                await delivery.close()
            if queue_db is not None:
                await queue_db.close()
            raise
        overload.start()
        log.info("mx forwarder listening on %s:%d", *server.sockets[0].getsockname()[:2])
    # Everything loaded so far (modules, SQLAlchemy's compiled metadata) lives as
    # long as the process: out of the collector's sight, a full collection
    # takes under a millisecond instead of 120 ms with every session waiting.
    gc.freeze()
    key_check = None
    if signatures is not None and config.signing_key_file:  # runs beside, never holds up the start
        key_check = asyncio.create_task(
            watch_published_key(dns_cache, signatures, config.signing_key_file),
            name="mx-signing-key")
    return ForwarderHandle(config, server, delivery, writer, queue_db, overload, key_check)
