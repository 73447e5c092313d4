"""Delivery workers: claim due deliveries, find the target's MX, hand the
message over with aiosmtplib (opportunistic STARTTLS), record the outcome.

A 4xx, a refused connection or a DNS failure defers the delivery with an
exponential backoff; past `max_queue_age_s` it bounces. A 5xx (or a domain
that does not exist, or a null MX) bounces at once. A bounce queues one
RFC 3464 notification to the original sender, in the same transaction that
marks the delivery bounced, unless the sender was null or the message was
one of our own notices. Each target of a message is a delivery of its own.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiosmtplib
import dns.name
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA

from mx_forwarder import metrics, notices
from mx_forwarder.config import ForwarderConfig
from mx_forwarder.dnscache import DnsCache, Status
from mx_forwarder.queue import (
    Claimed,
    NewMessage,
    Outcome,
    claim_due,
    insert_messages,
    record_outcomes,
    release,
    stats,
)
from mx_forwarder.signing import Signer
from mx_forwarder.spool import Spool
from storage import aliases
from storage.db import Database
from storage.models.mail import DeliveryState, MessageKind

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 600.0
MAIL_FEED_KEPT = timedelta(days=1)  # far longer than any alias cache lags behind


class Verdict(enum.Enum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Attempt:
    verdict: Verdict
    detail: str = ""
    status: str = "5.0.0"  # enhanced status code for a DSN
    remote: str | None = None


class NoRoute(Exception):
    """The target domain cannot receive mail (permanent) or not now (temporary)."""

    def __init__(self, detail: str, permanent: bool, status: str) -> None:
        super().__init__(detail)
        self.permanent = permanent
        self.status = status


class MxResolver:
    """Target domain -> [(host, address, port)], in preference order.

    Every lookup goes through the process's DNS cache (dnscache.py): a burst
    of mail to one domain costs one MX and one address query per TTL, and a
    resolver outage one time-out per `failure_ttl_s`, not one per message."""

    def __init__(self, cache: DnsCache, transport: Mapping[str, tuple[str, int]],
                 port: int) -> None:
        self._transport = {k.lower().rstrip("."): v for k, v in transport.items()}
        self._port = port
        self._cache = cache

    async def route(self, domain: str) -> list[tuple[str, str, int]]:
        domain = domain.lower().rstrip(".")
        fixed = self._transport.get(domain)
        if fixed is not None:
            host, port = fixed
            return [(host, await self._address(host), port)]
        answer = await self._cache.lookup(domain, "MX")
        if answer.status is Status.NXDOMAIN:
            raise NoRoute(f"domain {domain} does not exist", True, "5.1.2")
        if answer.status is Status.FAILED:
            raise NoRoute(f"MX lookup for {domain} failed: {answer.error}", False, "4.4.3")
        if answer.status is Status.NODATA:
            hosts = [domain]  # RFC 5321 5.1: the implicit MX
        else:
            exchanges = sorted((r.preference, random.random(), r.exchange)
                               for r in answer.records if isinstance(r, MX))
            if [e for _, _, e in exchanges] == [dns.name.root]:
                raise NoRoute(f"{domain} does not accept mail (null MX)", True, "5.1.10")
            hosts = [e.to_text(omit_final_dot=True) for _, _, e in exchanges]
        routes = []
        for host in hosts:
            try:
                routes.append((host, await self._address(host), self._port))
            except NoRoute:
                continue
        if not routes:
            raise NoRoute(f"no address for the MX hosts of {domain}", False, "4.4.3")
        return routes

    async def _address(self, host: str) -> str:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            pass
        for rdtype in ("A", "AAAA"):
            answer = await self._cache.lookup(host, rdtype)
            if answer.status is Status.FAILED:
                raise NoRoute(f"lookup of {host} {rdtype} failed: {answer.error}", False,
                              "4.4.3")
            for r in answer.records:
                if isinstance(r, A | AAAA):
                    return str(r.address)
        raise NoRoute(f"{host} has no address", False, "4.4.3")


def _status_of(code: int, message: str) -> str:
    first = message.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] in "245":
        return first
    return f"{str(code)[0]}.0.0"


@dataclass(slots=True)
class _Connection:
    client: aiosmtplib.SMTP
    uses: int = 0
    idle_since: float = 0.0


class ConnectionCache:
    """Idle SMTP connections per destination address, reused for the next
    messages (like Postfix's connection cache): connect, EHLO, STARTTLS and
    QUIT are paid once per `max_uses` messages instead of once per message."""

    def __init__(self, idle_s: float = 2.0, max_uses: int = 100, per_destination: int = 20) -> None:
        self.idle_s = idle_s
        self.max_uses = max_uses
        self.per_destination = per_destination
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    def take(self, key: tuple[str, int]) -> _Connection | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            conn = pool.pop()
            if conn.client.is_connected and now - conn.idle_since < self.idle_s:
                return conn
            conn.client.close()
        return None

    def give(self, key: tuple[str, int], conn: _Connection) -> bool:
        """Keep `conn` for reuse; False (the caller closes it) when it has served enough."""
        pool = self._idle.setdefault(key, [])
        if (conn.uses >= self.max_uses or len(pool) >= self.per_destination
                or not conn.client.is_connected):
            return False
        conn.idle_since = time.monotonic()
        pool.append(conn)
        return True

    async def reap(self, everything: bool = False) -> None:
        """QUIT the connections idle for too long (or all of them)."""
        now = time.monotonic()
        old: list[_Connection] = []
        for key, pool in list(self._idle.items()):
            keep = [c for c in pool if not everything and now - c.idle_since < self.idle_s]
            old += [c for c in pool if c not in keep]
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        for conn in old:
            await _quit(conn.client)


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


class Sender:
    """One SMTP transaction per delivery, over a cached connection when there is one."""

    def __init__(self, config: ForwarderConfig, mx: MxResolver,
                 connections: ConnectionCache | None = None) -> None:
        self._config = config
        self._mx = mx
        self.connections = connections or ConnectionCache()

    async def send(self, claimed: Claimed) -> Attempt:
        domain = claimed.target.rpartition("@")[2]
        try:
            routes = await self._mx.route(domain)
        except NoRoute as exc:
            verdict = Verdict.PERMANENT if exc.permanent else Verdict.TEMPORARY
            return Attempt(verdict, str(exc), exc.status)
        data = claimed.data
        if claimed.kind is MessageKind.FORWARD:
            data = b"Delivered-To: " + claimed.recipient.encode() + b"\r\n" + data
        last = Attempt(Verdict.TEMPORARY, "no MX host answered", "4.4.1")
        for host, address, port in routes:
            last = await self._send_to(host, address, port, claimed, data)
            if last.verdict is not Verdict.TEMPORARY:
                return last
        return last

    async def _send_to(self, host: str, address: str, port: int, claimed: Claimed,
                       data: bytes) -> Attempt:
        key = (address, port)
        conn = self.connections.take(key)
        if conn is not None:
            try:
                return await self._transaction(host, address, port, conn, claimed, data)
            except aiosmtplib.SMTPServerDisconnected:
                conn.client.close()  # it timed out on the other side: one more go, fresh
        client = aiosmtplib.SMTP(
            hostname=address, port=port, local_hostname=self._config.hostname,
            timeout=self._config.connect_timeout_s, start_tls=None, validate_certs=False,
        )
        try:
            await client.connect()
            return await self._transaction(host, address, port, _Connection(client), claimed,
                                           data)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            remote = f"{host} [{address}]:{port}"
            return Attempt(Verdict.TEMPORARY, f"{remote}: {exc}", "4.4.1", remote)

    async def _transaction(self, host: str, address: str, port: int, conn: _Connection,
                           claimed: Claimed, data: bytes) -> Attempt:
        """MAIL, RCPT, DATA; the connection is cached again after a success.

        Raises SMTPServerDisconnected for a cached connection found dead
        before anything was accepted, so the caller can retry at once."""
        remote = f"{host} [{address}]:{port}"
        client = conn.client
        options = []
        if not data.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if (not (claimed.envelope_sender + claimed.target).isascii()
                and client.supports_extension("smtputf8")):
            options.append("SMTPUTF8")
        reused = conn.uses > 0
        try:
            await client.sendmail(claimed.envelope_sender, [claimed.target], data,
                                  mail_options=options, timeout=self._config.delivery_timeout_s)
        except aiosmtplib.SMTPServerDisconnected:
            if reused:
                raise
            await _quit(client)
            return Attempt(Verdict.TEMPORARY, f"{remote}: connection lost", "4.4.2", remote)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await _quit(client)
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 450
            text = refused.message if refused is not None else str(exc)
            return self._reply(code, text, remote)
        except aiosmtplib.SMTPResponseException as exc:
            await _quit(client)
            return self._reply(exc.code, exc.message, remote)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await _quit(client)
            return Attempt(Verdict.TEMPORARY, f"{remote}: {exc}", "4.4.1", remote)
        conn.uses += 1
        if not self.connections.give((address, port), conn):
            await _quit(client)
        return Attempt(Verdict.DELIVERED, f"{remote}: delivered", "2.0.0", remote)

    async def close(self) -> None:
        await self.connections.reap(everything=True)

    @staticmethod
    def _reply(code: int, text: str, remote: str) -> Attempt:
        detail = f"{remote} said: {code} {text}"
        if 500 <= code < 600:
            return Attempt(Verdict.PERMANENT, detail, _status_of(code, text), remote)
        return Attempt(Verdict.TEMPORARY, detail, _status_of(code, text), remote)


def worker_name(config: ForwarderConfig) -> str:
    """Stable across restarts unless the SMTP port is picked by the system (port 0)."""
    host, port = config.listen
    instance = config.instance or (f"{host}:{port}" if port else uuid.uuid4().hex[:12])
    return f"{config.hostname[:40]}/{instance}"[:64]


class DeliveryService:
    """Sends `delivery_concurrency` deliveries at a time; one bookkeeping loop
    records their outcomes and polls the store, one transaction per round.

    Mail this process has just queued is already leased to it (the
    QueueWriter wrote the lease with the rows, see `reserve`) and handed
    over in memory with its bytes (`offer`): it goes out with no further
    query. The store is polled every `poll_interval_s` (or at once after
    `wake`) for the rest: retries, notices, other hosts' leftovers, and what
    was queued before a crash. A slot stays taken until the delivery's
    outcome is committed, so a crash repeats at most the deliveries in
    flight. Bookkeeping runs at synchronous=NORMAL on SQLite: a power cut
    could repeat a delivery, never lose one (the queue write is FULL).
    """

    MAX_FRESH = 10_000  # beyond this, new mail is queued unleased and waits for a poll
    LEASE_MARGIN_S = 30.0  # a handed-over delivery this close to its lease's end is left to a poll

    def __init__(self, config: ForwarderConfig, db: Database, sender: Sender,
                 gate: asyncio.Lock | None = None, signer: Signer | None = None) -> None:
        self.config = config
        self.signer = signer
        self.db = db
        self.sender = sender
        self.gate = gate or asyncio.Lock()
        self.worker_id = worker_name(config)
        self.lease_s = config.lease_s
        self._wake = asyncio.Event()
        self._poll_soon = True  # leftovers of an earlier run first
        self._fresh: deque[tuple[Claimed, float]] = deque()  # with its lease's end (monotonic)
        self._results: list[Outcome] = []
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._ready = asyncio.Event()  # set once earlier leases are taken back
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Something is due in the store (a notice was queued, an operator asked)."""
        self._poll_soon = True
        self._wake.set()

    def reserve(self, count: int) -> datetime | None:
        """May the QueueWriter lease `count` new deliveries to us? Then until when."""
        if self._stopping or not self._ready.is_set() or len(self._fresh) + count > self.MAX_FRESH:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.lease_s)

    def offer(self, fresh: list[Claimed]) -> None:
        """Deliveries just committed and leased to us by this process's QueueWriter:
        sent at once when there is a free slot, else as soon as one frees."""
        ends = time.monotonic() + self.lease_s - self.LEASE_MARGIN_S
        limit = max(1, self.config.delivery_concurrency)
        for item in fresh:
            if not self._fresh and len(self._inflight) + len(self._results) < limit:
                self._launch(item)
            else:
                self._fresh.append((item, ends))
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._bookkeeping_loop(), name="mx-delivery"),
            asyncio.create_task(self._housekeeping_loop(), name="mx-housekeeping"),
        ]

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        self._tasks[1].cancel()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        for task in self._inflight:
            task.cancel()
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.sender.close()
        try:  # what is still leased to us (handed over, not sent) is due again
            async with self.gate:
                await release(self.db, self.worker_id)
        except Exception as exc:  # noqa: BLE001  (the lease runs out by itself anyway)
            log.warning("could not release leases: %s", exc)

    def _launch(self, item: Claimed) -> None:
        task = asyncio.create_task(self._deliver(item))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _bookkeeping_loop(self) -> None:
        limit = max(1, self.config.delivery_concurrency)
        last_poll = float("-inf")
        failures = 0
        try:  # what a killed predecessor of ours had leased is due again now
            async with self.gate:
                await release(self.db, self.worker_id)
        except Exception as exc:  # noqa: BLE001  (then the leases run out by themselves)
            log.warning("could not take back earlier leases: %s", exc)
        self._ready.set()
        while True:
            # busy: sending, or sent with the outcome not committed yet
            busy = len(self._inflight) + len(self._results)
            now = time.monotonic()
            while self._fresh and busy < limit and not self._stopping:
                item, ends = self._fresh.popleft()
                if now < ends:
                    self._launch(item)
                    busy += 1
                # else: its lease is about to run out: a poll will find it
            outcomes, self._results = self._results, []
            free = 0 if self._stopping else limit - len(self._inflight) - len(outcomes)
            since_poll = now - last_poll
            poll = free > 0 and not self._fresh and (
                self._poll_soon or since_poll >= self.config.poll_interval_s)
            if not (outcomes or poll):
                if self._stopping and not self._inflight:
                    return
                self._wake.clear()
                timeout = max(0.0, self.config.poll_interval_s - since_poll)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout if free > 0 else None)
                except TimeoutError:
                    pass
                continue
            try:
                async with self.gate, self.db.write() as session:
                    spooled = await record_outcomes(session, outcomes)
                    due = (await claim_due(session, self.worker_id, free, self.lease_s,
                                           skip_locked=self.db.is_postgres)
                           if poll else [])
            except Exception as exc:  # noqa: BLE001  (keep the worker alive; the leases expire)
                failures += 1
                log.error("delivery bookkeeping failed: %s", exc)
                if not self._stopping or failures < 3:
                    self._results = outcomes + self._results
                await asyncio.sleep(self.config.poll_interval_s)
                continue
            failures = 0
            if poll:
                last_poll = time.monotonic()
                self._poll_soon = len(due) == free  # more may be due
            if any(o.notification is not None for o in outcomes):
                self._poll_soon = True
            for path in spooled:
                Spool.remove(path)
            for item in due:
                self._launch(item)

    async def _deliver(self, item: Claimed) -> None:
        try:
            attempt = await self.sender.send(item)
        except Exception as exc:
            log.exception("delivery=%d crashed", item.delivery_id)
            attempt = Attempt(Verdict.TEMPORARY, f"internal error: {exc}", "4.3.0")
        self._results.append(self._outcome(item, attempt))
        self._wake.set()

    def _outcome(self, item: Claimed, attempt: Attempt) -> Outcome:
        now = datetime.now(UTC)
        if attempt.verdict is Verdict.DELIVERED:
            metrics.DELIVERED.inc()
            log.info("delivered message=%d to=%s via %s", item.message_id, item.target,
                     attempt.remote)
            return Outcome(item.delivery_id, item.message_id, DeliveryState.DELIVERED, attempt.detail)
        expired = (now - item.received_at).total_seconds() >= self.config.max_queue_age_s
        if attempt.verdict is Verdict.TEMPORARY and not expired:
            metrics.DEFERRED.inc()
            delay = min(self.config.retry_max_s,
                        self.config.retry_base_s * (2 ** min(item.attempts, 20)))
            log.info("deferred message=%d to=%s: %s", item.message_id, item.target,
                     attempt.detail)
            return Outcome(item.delivery_id, item.message_id, DeliveryState.DEFERRED, attempt.detail,
                           now + timedelta(seconds=delay))
        metrics.BOUNCED.inc()
        status = attempt.status
        detail = attempt.detail
        if attempt.verdict is Verdict.TEMPORARY:
            status = "4.4.7"
            detail = f"delivery time expired; last error: {attempt.detail}"
        log.info("bounced message=%d to=%s: %s", item.message_id, item.target, detail)
        note = None
        if notices.wants_dsn(item):
            metrics.DSN_SENT.inc()
            note = self._signed(notices.build_dsn(
                item, hostname=self.config.hostname,
                status=status if status[0] in "45" else "5.0.0",
                diagnostic=detail, remote_mta=attempt.remote))
        return Outcome(item.delivery_id, item.message_id, DeliveryState.BOUNCED, detail, None, note)

    def _signed(self, note: NewMessage) -> NewMessage:
        """Our own notices carry our DKIM signature when sign_dkim is on (no ARC:
        nothing was received, nothing to vouch for)."""
        if self.signer is None or not self.signer.settings.dkim:
            return note
        return replace(note, data=self.signer.sign(b"", note.data) + note.data)

    async def _housekeeping_loop(self) -> None:
        pruned_at = float("-inf")
        while not self._stopping:
            try:
                await self.sender.connections.reap()
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    async with self.gate, self.db.write() as session:
                        await aliases.prune_changes(session, MAIL_FEED_KEPT)
                    pruned_at = time.monotonic()
                await self.send_confirmations()
                async with self.db.read() as session:
                    current = await stats(session)
                metrics.QUEUE_DEPTH.set(current.depth)
                metrics.OLDEST_AGE.set(
                    0 if current.oldest is None
                    else (datetime.now(UTC) - current.oldest).total_seconds()
                )
            except Exception as exc:  # noqa: BLE001  (next round)
                log.error("housekeeping failed: %s", exc)
            await asyncio.sleep(max(self.config.poll_interval_s, 1.0))

    async def send_confirmations(self) -> int:
        """Queue a confirmation mail for each new pending target."""
        async with self.gate, self.db.write() as session:
            requests = await aliases.claim_confirmations(session)
            await insert_messages(session, [
                self._signed(notices.build_confirmation(r, hostname=self.config.hostname,
                                                        confirm_url=self.config.confirm_url))
                for r in requests
            ], None, 0)
        if requests:
            log.info("queued %d confirmation requests", len(requests))
            self.wake()
        return len(requests)
