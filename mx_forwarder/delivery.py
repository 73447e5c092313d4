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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from mx_forwarder import metrics, notices
from mx_forwarder.config import ForwarderConfig
from mx_forwarder.queue import Claimed, Outcome, claim, finish, insert_messages, release, stats
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
    """Target domain -> [(host, address, port)], in preference order."""

    def __init__(self, resolver: tuple[str, int] | None, transport: Mapping[str, tuple[str, int]],
                 port: int, timeout_s: float) -> None:
        self._transport = {k.lower().rstrip("."): v for k, v in transport.items()}
        self._port = port
        self._resolver = dns.asyncresolver.Resolver(configure=resolver is None)
        if resolver is not None:
            self._resolver.nameservers = [resolver[0]]
            self._resolver.port = resolver[1]
        self._resolver.lifetime = timeout_s

    async def route(self, domain: str) -> list[tuple[str, str, int]]:
        domain = domain.lower().rstrip(".")
        fixed = self._transport.get(domain)
        if fixed is not None:
            host, port = fixed
            return [(host, await self._address(host), port)]
        try:
            answer = await self._resolver.resolve(domain, "MX")
            exchanges = sorted(
                ((r.preference, random.random(), r.exchange.to_text(omit_final_dot=True))
                 for r in answer), key=lambda t: (t[0], t[1])
            )
            hosts = [h for _, _, h in exchanges]
            if hosts == [""] or hosts == ["."]:
                raise NoRoute(f"{domain} does not accept mail (null MX)", True, "5.1.10")
        except dns.resolver.NXDOMAIN as exc:
            raise NoRoute(f"domain {domain} does not exist", True, "5.1.2") from exc
        except dns.resolver.NoAnswer:
            hosts = [domain]  # RFC 5321 5.1: the implicit MX
        except (dns.exception.DNSException, OSError) as exc:
            raise NoRoute(f"MX lookup for {domain} failed: {exc}", False, "4.4.3") from exc
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
            try:
                answer = await self._resolver.resolve(host, rdtype)
                return str(answer[0].address)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except (dns.exception.DNSException, OSError) as exc:
                raise NoRoute(f"lookup of {host} failed: {exc}", False, "4.4.3") from exc
        raise NoRoute(f"{host} has no address", False, "4.4.3")


def _status_of(code: int, message: str) -> str:
    first = message.split(" ", 1)[0]
    parts = first.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts) and first[0] in "245":
        return first
    return f"{str(code)[0]}.0.0"


class Sender:
    """One SMTP transaction per delivery."""

    def __init__(self, config: ForwarderConfig, mx: MxResolver) -> None:
        self._config = config
        self._mx = mx

    async def send(self, claimed: Claimed) -> Attempt:
        domain = claimed.target.rpartition("@")[2]
        try:
            routes = await self._mx.route(domain)
        except NoRoute as exc:
            verdict = Verdict.PERMANENT if exc.permanent else Verdict.TEMPORARY
            return Attempt(verdict, str(exc), exc.status)
        data = claimed.data
        if claimed.kind is MessageKind.FORWARD:
            data = f"Delivered-To: {claimed.recipient}\r\n".encode() + data
        last = Attempt(Verdict.TEMPORARY, "no MX host answered", "4.4.1")
        for host, address, port in routes:
            last = await self._send_to(host, address, port, claimed, data)
            if last.verdict is not Verdict.TEMPORARY:
                return last
        return last

    async def _send_to(self, host: str, address: str, port: int, claimed: Claimed,
                       data: bytes) -> Attempt:
        remote = f"{host} [{address}]:{port}"
        client = aiosmtplib.SMTP(
            hostname=address, port=port, local_hostname=self._config.hostname,
            timeout=self._config.connect_timeout_s, start_tls=None, validate_certs=False,
        )
        options = []
        try:
            await client.connect()
            if not data.isascii() and client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            if (not (claimed.envelope_sender + claimed.target).isascii()
                    and client.supports_extension("smtputf8")):
                options.append("SMTPUTF8")
            await client.sendmail(claimed.envelope_sender, [claimed.target], data,
                                  mail_options=options, timeout=self._config.delivery_timeout_s)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused is not None else 450
            text = refused.message if refused is not None else str(exc)
            return self._reply(code, text, remote)
        except aiosmtplib.SMTPResponseException as exc:
            return self._reply(exc.code, exc.message, remote)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return Attempt(Verdict.TEMPORARY, f"{remote}: {exc}", "4.4.1", remote)
        finally:
            try:
                if client.is_connected:
                    await asyncio.wait_for(client.quit(), 5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                client.close()
        return Attempt(Verdict.DELIVERED, f"{remote}: delivered", "2.0.0", remote)

    @staticmethod
    def _reply(code: int, text: str, remote: str) -> Attempt:
        detail = f"{remote} said: {code} {text}"
        if 500 <= code < 600:
            return Attempt(Verdict.PERMANENT, detail, _status_of(code, text), remote)
        return Attempt(Verdict.TEMPORARY, detail, _status_of(code, text), remote)


class DeliveryService:
    """Claims, sends and records, `delivery_concurrency` at a time."""

    def __init__(self, config: ForwarderConfig, db: Database, sender: Sender,
                 queue_db: Database | None = None) -> None:
        self.config = config
        self.db = db
        self.queue_db = queue_db or db
        self.sender = sender
        self.worker_id = f"{config.hostname[:40]}-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._results: list[Outcome] = []
        self._results_ready = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="mx-claim"),
            asyncio.create_task(self._finish_loop(), name="mx-finish"),
            asyncio.create_task(self._housekeeping_loop(), name="mx-housekeeping"),
        ]

    async def close(self) -> None:
        self._stopping = True
        self._wake.set()
        for task in self._tasks[::2]:  # claim and housekeeping stop at once
            task.cancel()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=10)
        for task in self._inflight:
            task.cancel()
        self._results_ready.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush_results()
        try:
            await release(self.queue_db, self.worker_id)
        except Exception as exc:  # noqa: BLE001  (the lease runs out by itself anyway)
            log.warning("could not release leases: %s", exc)

    async def _claim_loop(self) -> None:
        limit = max(1, self.config.delivery_concurrency)
        while not self._stopping:
            free = limit - len(self._inflight)
            batch: list[Claimed] = []
            if free > 0:
                try:
                    batch = await claim(self.queue_db, self.worker_id, free, self.config.lease_s)
                except Exception as exc:  # noqa: BLE001  (keep the worker alive; retry)
                    log.error("claiming deliveries failed: %s", exc)
                    await asyncio.sleep(self.config.poll_interval_s)
                    continue
            for item in batch:
                task = asyncio.create_task(self._deliver(item))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if batch and len(batch) == free:
                continue  # more may be due
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)
            except TimeoutError:
                pass

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(self, item: Claimed) -> None:
        try:
            attempt = await self.sender.send(item)
        except Exception as exc:
            log.exception("delivery=%d crashed", item.delivery_id)
            attempt = Attempt(Verdict.TEMPORARY, f"internal error: {exc}", "4.3.0")
        self._results.append(self._outcome(item, attempt))
        self._results_ready.set()

    def _outcome(self, item: Claimed, attempt: Attempt) -> Outcome:
        now = datetime.now(UTC)
        if attempt.verdict is Verdict.DELIVERED:
            metrics.DELIVERED.inc()
            log.info("delivered message=%d to=%s via %s", item.message_id, item.target,
                     attempt.remote)
            return Outcome(item.delivery_id, DeliveryState.DELIVERED, attempt.detail)
        expired = (now - item.received_at).total_seconds() >= self.config.max_queue_age_s
        if attempt.verdict is Verdict.TEMPORARY and not expired:
            metrics.DEFERRED.inc()
            delay = min(self.config.retry_max_s,
                        self.config.retry_base_s * (2 ** min(item.attempts, 20)))
            log.info("deferred message=%d to=%s: %s", item.message_id, item.target,
                     attempt.detail)
            return Outcome(item.delivery_id, DeliveryState.DEFERRED, attempt.detail,
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
            note = notices.build_dsn(item, hostname=self.config.hostname,
                                     status=status if status[0] in "45" else "5.0.0",
                                     diagnostic=detail, remote_mta=attempt.remote)
        return Outcome(item.delivery_id, DeliveryState.BOUNCED, detail, None, note)

    async def _finish_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            self._results_ready.clear()
            await self._flush_results()
            if self._stopping and not self._inflight:
                return

    async def _flush_results(self) -> None:
        while self._results:
            batch, self._results = self._results, []
            try:
                await finish(self.queue_db, batch)
            except Exception as exc:  # noqa: BLE001  (the lease expires; the row is retried)
                log.error("recording %d outcomes failed: %s", len(batch), exc)
                await asyncio.sleep(self.config.poll_interval_s)
                if not self._stopping:
                    self._results = batch + self._results
                return
            self._wake.set()

    async def _housekeeping_loop(self) -> None:
        pruned_at = float("-inf")
        while not self._stopping:
            try:
                if time.monotonic() - pruned_at > PRUNE_EVERY_S:
                    async with self.db.write() as session:
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
        async with self.queue_db.write() as session:
            requests = await aliases.claim_confirmations(session)
            await insert_messages(session, [
                notices.build_confirmation(r, hostname=self.config.hostname,
                                           confirm_url=self.config.confirm_url)
                for r in requests
            ], None, 0)
        if requests:
            log.info("queued %d confirmation requests", len(requests))
            self.wake()
        return len(requests)
