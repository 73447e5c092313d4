"""The durable queue: messages and their per-target deliveries in the store.

`QueueWriter.enqueue` returns only once the message row (and its spool file,
if any) is committed: the SMTP handler answers 250 after that and never
before. Concurrent enqueues share one transaction (group commit), so twenty
senders cost one commit, not twenty.

Workers `claim_due` deliveries with a lease (fresh ones are born leased,
see QueueWriter); `record_outcomes` records what happened and deletes a
message once each of its deliveries is final. A worker that dies leaves
its leased rows to whoever claims them after the lease, or to its own
restart (same name), which takes them back at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy import ColumnElement, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mx_forwarder.errors import QueueError
from mx_forwarder.spool import Spool
from storage.db import Database
from storage.models.mail import DeliveryState, MailDelivery, MailMessage, MessageKind

log = logging.getLogger(__name__)

PENDING_STATES = (DeliveryState.QUEUED, DeliveryState.DEFERRED)


def aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they are UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class NewMessage:
    kind: MessageKind
    envelope_sender: str  # what goes on the wire ("" = null sender)
    original_sender: str
    data: bytes
    deliveries: tuple[tuple[str, str], ...]  # (recipient, target)
    client_address: str | None = None
    client_helo: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery_id: int
    message_id: int
    kind: MessageKind
    envelope_sender: str
    original_sender: str
    recipient: str
    target: str
    attempts: int
    received_at: datetime
    data: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    delivery_id: int
    message_id: int
    state: DeliveryState
    error: str | None = None
    next_attempt_at: datetime | None = None  # for DEFERRED
    notification: NewMessage | None = None  # a DSN to queue with it


@dataclass(frozen=True, slots=True)
class QueueEntry:
    delivery_id: int
    message_id: int
    kind: MessageKind
    state: DeliveryState
    sender: str
    recipient: str
    target: str
    size: int
    attempts: int
    received_at: datetime
    next_attempt_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest: datetime | None


# Plain Core on the tables: no ORM unit of work or bulk-update bookkeeping per row.
_MESSAGES = MailMessage.metadata.tables["mail_messages"]
_DELIVERIES = MailDelivery.metadata.tables["mail_deliveries"]


@dataclass(frozen=True, slots=True)
class Stored:
    message_id: int
    delivery_ids: tuple[int, ...]  # in the order of NewMessage.deliveries
    received_at: datetime


async def store_messages(
    session: AsyncSession, messages: Sequence[NewMessage], spool: Spool | None,
    spool_threshold: int, lease: tuple[str, datetime] | None = None,
) -> list[Stored]:
    """Insert inside the caller's transaction (plain Core, two statements);
    spool files are written (fsynced) first. With `lease` (worker, until),
    the deliveries are born leased to that worker."""
    if not messages:
        return []
    now = datetime.now(UTC)
    rows = []
    for m in messages:
        path = None
        if spool is not None and len(m.data) > spool_threshold:
            path = await asyncio.to_thread(spool.write, m.data)
        rows.append({
            "kind": m.kind.value, "envelope_sender": m.envelope_sender,
            "original_sender": m.original_sender, "client_address": m.client_address,
            "client_helo": m.client_helo, "size": len(m.data),
            "body": None if path else m.data, "spool_path": path, "received_at": now,
        })
    ids = list((await session.execute(
        insert(_MESSAGES).returning(_MESSAGES.c.id, sort_by_parameter_order=True), rows
    )).scalars())
    deliveries = [
        {"message_id": mid, "recipient": rcpt, "target": target,
         "state": DeliveryState.QUEUED.value, "attempts": 0, "next_attempt_at": now,
         "created_at": now, "locked_by": lease[0] if lease else None,
         "locked_until": lease[1] if lease else None}
        for mid, m in zip(ids, messages, strict=True) for rcpt, target in m.deliveries
    ]
    delivery_ids: list[int] = []
    if deliveries:
        delivery_ids = list((await session.execute(
            insert(_DELIVERIES).returning(_DELIVERIES.c.id, sort_by_parameter_order=True),
            deliveries,
        )).scalars())
    stored = []
    at = 0
    for mid, m in zip(ids, messages, strict=True):
        stored.append(Stored(mid, tuple(delivery_ids[at:at + len(m.deliveries)]), now))
        at += len(m.deliveries)
    return stored


async def insert_messages(
    session: AsyncSession, messages: Sequence[NewMessage], spool: Spool | None,
    spool_threshold: int,
) -> list[int]:
    """Insert inside the caller's transaction; the new message ids."""
    return [s.message_id for s in await store_messages(session, messages, spool,
                                                       spool_threshold)]


def fresh_deliveries(messages: Sequence[NewMessage], stored: Sequence[Stored]) -> list[Claimed]:
    """What was just queued, as a delivery worker sees it (not leased yet)."""
    return [
        Claimed(did, s.message_id, m.kind, m.envelope_sender, m.original_sender, rcpt, target,
                0, s.received_at, m.data)
        for m, s in zip(messages, stored, strict=True)
        for did, (rcpt, target) in zip(s.delivery_ids, m.deliveries, strict=True)
    ]


class Handoff(Protocol):
    """The local delivery worker, as the QueueWriter sees it."""

    worker_id: str

    def reserve(self, count: int) -> datetime | None:
        """Until when `count` new deliveries may be leased to the worker; None: not now."""
        ...

    def offer(self, fresh: list[Claimed]) -> None:
        """The deliveries just committed, leased to the worker, with their bytes."""
        ...

    def wake(self) -> None:
        """Unleased deliveries were queued: poll the store."""
        ...


class QueueWriter:
    """Group commit: enqueues arriving while a commit runs go in the next one.

    When the local delivery worker has room, the deliveries are written
    already leased to it and handed over with their bytes after the commit:
    they go out with no further query.
    """

    def __init__(self, db: Database, spool: Spool | None = None,
                 spool_threshold: int = 256 * 1024, max_batch: int = 200,
                 handoff: Handoff | None = None, gate: asyncio.Lock | None = None) -> None:
        self._db = db
        self._handoff = handoff
        self._spool = spool
        self._threshold = spool_threshold
        self._max_batch = max_batch
        self._gate = gate or asyncio.Lock()
        self._pending: list[tuple[NewMessage, asyncio.Future[int], float]] = []
        self._writing_since: float | None = None  # enqueue time of the batch being written
        self._flusher: asyncio.Task[None] | None = None

    def oldest_wait_s(self) -> float:
        """How long the oldest message not committed yet has been waiting (0: none)."""
        since = self._writing_since
        if self._pending and (since is None or self._pending[0][2] < since):
            since = self._pending[0][2]
        return 0.0 if since is None else time.monotonic() - since

    async def enqueue(self, message: NewMessage) -> int:
        """The message id, once committed; QueueError if the store failed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((message, future, time.monotonic()))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            async with self._gate:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                self._writing_since = batch[0][2]
                messages = [m for m, _, _ in batch]
                until = None
                if self._handoff is not None:
                    until = self._handoff.reserve(sum(len(m.deliveries) for m in messages))
                lease = (self._handoff.worker_id, until) if self._handoff and until else None
                try:
                    async with self._db.write() as session:
                        stored = await store_messages(session, messages, self._spool,
                                                      self._threshold, lease)
                except Exception as exc:  # noqa: BLE001  (store down: every waiter gets a 4xx)
                    log.error("queue write failed: %s", exc)
                    for _, future, _ in batch:
                        if not future.done():
                            future.set_exception(QueueError(str(exc)))
                    continue
                finally:
                    self._writing_since = None
            for (_, future, _), s in zip(batch, stored, strict=True):
                if not future.done():
                    future.set_result(s.message_id)
            if self._handoff is not None:
                if lease is not None:
                    self._handoff.offer(fresh_deliveries(messages, stored))
                else:
                    self._handoff.wake()

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _load(spool_path: str | None, body: bytes | None) -> bytes:
    if body is not None:
        return body
    if spool_path is None:
        raise QueueError("message has neither body nor spool file")
    return Spool.read(spool_path)


def _free_lease(now: datetime) -> ColumnElement[bool]:
    return or_(_DELIVERIES.c.locked_until.is_(None), _DELIVERIES.c.locked_until < now)


async def claim_due(
    session: AsyncSession, worker: str, limit: int, lease_s: float, *, skip_locked: bool
) -> list[Claimed]:
    """Lease up to `limit` due deliveries to `worker`, with their messages' bytes."""
    if limit <= 0:
        return []
    now = datetime.now(UTC)
    due = (
        select(_DELIVERIES.c.id)
        .where(_DELIVERIES.c.state.in_([s.value for s in PENDING_STATES]),
               _DELIVERIES.c.next_attempt_at <= now, _free_lease(now))
        .order_by(_DELIVERIES.c.next_attempt_at, _DELIVERIES.c.id)
        .limit(limit)
    )
    if skip_locked:
        due = due.with_for_update(skip_locked=True)
    ids: list[int] = list((await session.execute(due)).scalars())
    if not ids:
        return []
    await session.execute(
        update(_DELIVERIES).where(_DELIVERIES.c.id.in_(ids))
        .values(locked_by=worker, locked_until=now + timedelta(seconds=lease_s))
    )
    rows = (await session.execute(
        select(_DELIVERIES.c.id, _DELIVERIES.c.message_id, _MESSAGES.c.kind,
               _MESSAGES.c.envelope_sender, _MESSAGES.c.original_sender,
               _DELIVERIES.c.recipient, _DELIVERIES.c.target, _DELIVERIES.c.attempts,
               _MESSAGES.c.received_at, _MESSAGES.c.body, _MESSAGES.c.spool_path)
        .join(_MESSAGES, _MESSAGES.c.id == _DELIVERIES.c.message_id)
        .where(_DELIVERIES.c.id.in_(ids))
        .order_by(_DELIVERIES.c.id)
    )).all()
    claimed = []
    for r in rows:
        try:
            data = _load(r.spool_path, r.body)
        except (OSError, QueueError) as exc:
            log.error("message=%s cannot be read: %s", r.message_id, exc)
            continue
        claimed.append(Claimed(r.id, r.message_id, MessageKind(r.kind), r.envelope_sender,
                               r.original_sender, r.recipient, r.target, r.attempts,
                               aware(r.received_at), data))
    return claimed


async def record_outcomes(
    session: AsyncSession, outcomes: Sequence[Outcome], spool: Spool | None = None,
    spool_threshold: int = 256 * 1024,
) -> list[str]:
    """Record outcomes (and queue their DSNs) in the caller's transaction and delete
    the messages whose deliveries are all final; the spool files to remove after commit.

    The common round, every delivery of its messages delivered, is one DELETE
    (the delivery rows go with their message)."""
    if not outcomes:
        return []
    now = datetime.now(UTC)
    delivered = [o for o in outcomes if o.state is DeliveryState.DELIVERED]
    for o in outcomes:
        if o.state is DeliveryState.DELIVERED:
            continue
        values: dict[str, object] = {
            "state": o.state.value, "last_error": o.error, "locked_by": None,
            "locked_until": None, "attempts": _DELIVERIES.c.attempts + 1,
        }
        if o.state in PENDING_STATES:
            values["next_attempt_at"] = o.next_attempt_at or now
        else:
            values["finished_at"] = now
        await session.execute(
            update(_DELIVERIES).where(_DELIVERIES.c.id == o.delivery_id).values(**values)
        )
    notes = [o.notification for o in outcomes if o.notification is not None]
    await store_messages(session, notes, spool, spool_threshold)
    still_open = (
        select(_DELIVERIES.c.id)
        .where(_DELIVERIES.c.message_id == _MESSAGES.c.id,
               _DELIVERIES.c.state.in_([s.value for s in PENDING_STATES]),
               _DELIVERIES.c.id.not_in([o.delivery_id for o in delivered]))
        .exists()
    )
    done = (await session.execute(
        delete(_MESSAGES)
        .where(_MESSAGES.c.id.in_({o.message_id for o in outcomes}), ~still_open)
        .returning(_MESSAGES.c.id, _MESSAGES.c.spool_path)
    )).all()
    gone = {d.id for d in done}
    survivors = [o.delivery_id for o in delivered if o.message_id not in gone]
    if survivors:  # delivered targets of messages with other targets still to go
        await session.execute(
            update(_DELIVERIES).where(_DELIVERIES.c.id.in_(survivors))
            .values(state=DeliveryState.DELIVERED.value, locked_by=None, locked_until=None,
                    last_error=None, attempts=_DELIVERIES.c.attempts + 1, finished_at=now)
        )
    return [d.spool_path for d in done if d.spool_path]


async def release(db: Database, worker: str) -> None:
    """Give back every lease of `worker` (a clean shutdown)."""
    async with db.write() as session:
        await session.execute(
            update(MailDelivery)
            .where(MailDelivery.locked_by == worker, MailDelivery.state.in_(PENDING_STATES))
            .values(locked_by=None, locked_until=None)
        )


async def stats(session: AsyncSession) -> QueueStats:
    depth, oldest = (await session.execute(
        select(func.count(MailDelivery.id), func.min(MailMessage.received_at))
        .join(MailMessage, MailMessage.id == MailDelivery.message_id)
        .where(MailDelivery.state.in_(PENDING_STATES))
    )).one()
    return QueueStats(int(depth or 0), aware(oldest) if oldest is not None else None)


async def waiting(session: AsyncSession) -> int:
    """Deliveries waiting (queued or deferred): the queue depth, one indexed count."""
    count = await session.scalar(
        select(func.count(_DELIVERIES.c.id))
        .where(_DELIVERIES.c.state.in_([s.value for s in PENDING_STATES]))
    )
    return int(count or 0)


async def list_queue(session: AsyncSession, limit: int = 1000) -> list[QueueEntry]:
    rows = (await session.execute(
        select(MailDelivery, MailMessage.kind, MailMessage.original_sender, MailMessage.size,
               MailMessage.received_at)
        .join(MailMessage, MailMessage.id == MailDelivery.message_id)
        .where(MailDelivery.state.in_(PENDING_STATES))
        .order_by(MailMessage.received_at, MailDelivery.id)
        .limit(limit)
    )).all()
    return [
        QueueEntry(d.id, d.message_id, kind, d.state, sender, d.recipient, d.target, size,
                   d.attempts, aware(received), aware(d.next_attempt_at), d.last_error)
        for d, kind, sender, size, received in rows
    ]


async def retry_now(session: AsyncSession, message_id: int) -> int:
    """Make the message's waiting deliveries due now; how many."""
    result = await session.execute(
        update(MailDelivery)
        .where(MailDelivery.message_id == message_id, MailDelivery.state.in_(PENDING_STATES))
        .values(next_attempt_at=datetime.now(UTC), locked_by=None, locked_until=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def drop(session: AsyncSession, message_id: int) -> str | None:
    """Delete a message and its deliveries; returns its spool path to remove after commit."""
    row = (await session.execute(
        select(MailMessage.spool_path).where(MailMessage.id == message_id)
    )).one_or_none()
    if row is None:
        raise QueueError(f"no message {message_id} in the queue")
    await session.execute(delete(MailMessage).where(MailMessage.id == message_id))
    path: str | None = row.spool_path
    return path


# No enqueue lasts this long: an older spool file no row names is an orphan.
ORPHAN_AGE_S = 3600.0


async def sweep_spool(db: Database, spool: Spool, min_age_s: float = ORPHAN_AGE_S) -> int:
    """Remove the spool files no message names (a crash between a row's delete and the
    file's unlink, or between a file's write and its row's commit); how many.

    Files younger than `min_age_s` stay: another process on this spool may be
    about to commit the row that names them."""
    cutoff = time.time() - min_age_s
    old = [path for path in spool.files() if path.stat().st_mtime < cutoff]
    if not old:
        return 0
    bodies = [str(p) for p in old if p.suffix == ".eml"]
    named: set[str | None] = set()
    async with db.read() as session:
        for start in range(0, len(bodies), 500):  # a backlog of days holds many
            named.update(await session.scalars(select(MailMessage.spool_path).where(
                MailMessage.spool_path.in_(bodies[start:start + 500]))))
    orphans = [p for p in old if str(p) not in named]
    for path in orphans:
        Spool.remove(str(path))
    return len(orphans)
