"""The durable queue: messages and their per-target deliveries in the store.

`QueueWriter.enqueue` returns only once the message row (and its spool file,
if any) is committed: the SMTP handler answers 250 after that and never
before. Concurrent enqueues share one transaction (group commit), so twenty
senders cost one commit, not twenty.

Workers `claim` due deliveries with a lease; `finish` records the outcome
and deletes a message once each of its deliveries is final. A worker that
dies leaves its leased rows to whoever claims them after the lease.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, insert, or_, select, update
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


async def insert_messages(
    session: AsyncSession, messages: Sequence[NewMessage], spool: Spool | None,
    spool_threshold: int,
) -> list[int]:
    """Insert inside the caller's transaction; spool files are written (fsynced) first."""
    if not messages:
        return []
    rows = []
    for m in messages:
        path = None
        if spool is not None and len(m.data) > spool_threshold:
            path = await asyncio.to_thread(spool.write, m.data)
        rows.append({
            "kind": m.kind, "envelope_sender": m.envelope_sender,
            "original_sender": m.original_sender, "client_address": m.client_address,
            "client_helo": m.client_helo, "size": len(m.data),
            "body": None if path else m.data, "spool_path": path,
            "received_at": datetime.now(UTC),
        })
    ids = list((await session.execute(
        insert(MailMessage).returning(MailMessage.id, sort_by_parameter_order=True), rows
    )).scalars())
    now = datetime.now(UTC)
    deliveries = [
        {"message_id": mid, "recipient": rcpt, "target": target,
         "state": DeliveryState.QUEUED, "attempts": 0, "next_attempt_at": now,
         "created_at": now}
        for mid, m in zip(ids, messages, strict=True) for rcpt, target in m.deliveries
    ]
    if deliveries:
        await session.execute(insert(MailDelivery), deliveries)
    return ids


class QueueWriter:
    """Group commit: enqueues arriving while a commit runs go in the next one."""

    def __init__(self, db: Database, spool: Spool | None = None,
                 spool_threshold: int = 256 * 1024, max_batch: int = 200,
                 on_commit: Callable[[], None] | None = None) -> None:
        self._db = db
        self._on_commit = on_commit
        self._spool = spool
        self._threshold = spool_threshold
        self._max_batch = max_batch
        self._pending: list[tuple[NewMessage, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, message: NewMessage) -> int:
        """The message id, once committed; QueueError if the store failed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((message, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                async with self._db.write() as session:
                    ids = await insert_messages(
                        session, [m for m, _ in batch], self._spool, self._threshold
                    )
            except Exception as exc:  # noqa: BLE001  (store down: every waiter gets a 4xx)
                log.error("queue write failed: %s", exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(QueueError(str(exc)))
                continue
            for (_, future), mid in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(mid)
            if self._on_commit is not None:
                self._on_commit()

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


def _load(spool_path: str | None, body: bytes | None) -> bytes:
    if body is not None:
        return body
    if spool_path is None:
        raise QueueError("message has neither body nor spool file")
    return Spool.read(spool_path)


async def claim(db: Database, worker: str, limit: int, lease_s: float) -> list[Claimed]:
    """Lease up to `limit` due deliveries to `worker`."""
    now = datetime.now(UTC)
    due = (
        select(MailDelivery.id)
        .where(
            MailDelivery.state.in_(PENDING_STATES),
            MailDelivery.next_attempt_at <= now,
            or_(MailDelivery.locked_until.is_(None), MailDelivery.locked_until < now),
        )
        .order_by(MailDelivery.next_attempt_at, MailDelivery.id)
        .limit(limit)
    )
    if db.is_postgres:
        due = due.with_for_update(skip_locked=True)
    async with db.write() as session:
        ids = list((await session.execute(due)).scalars())
        if not ids:
            return []
        await session.execute(
            update(MailDelivery)
            .where(MailDelivery.id.in_(ids))
            .values(locked_by=worker, locked_until=now + timedelta(seconds=lease_s))
        )
        rows = (await session.execute(
            select(MailDelivery.id, MailDelivery.message_id, MailMessage.kind,
                   MailMessage.envelope_sender, MailMessage.original_sender,
                   MailDelivery.recipient, MailDelivery.target, MailDelivery.attempts,
                   MailMessage.received_at, MailMessage.body, MailMessage.spool_path)
            .join(MailMessage, MailMessage.id == MailDelivery.message_id)
            .where(MailDelivery.id.in_(ids))
        )).all()
    claimed = []
    for r in rows:
        try:
            data = _load(r.spool_path, r.body)
        except (OSError, QueueError) as exc:
            log.error("message=%s cannot be read: %s", r.message_id, exc)
            continue
        claimed.append(Claimed(r.id, r.message_id, r.kind, r.envelope_sender,
                               r.original_sender, r.recipient, r.target, r.attempts,
                               aware(r.received_at), data))
    return claimed


async def finish(
    db: Database, outcomes: Sequence[Outcome], spool: Spool | None = None,
    spool_threshold: int = 256 * 1024,
) -> None:
    """Record outcomes (and queue their DSNs) in one transaction; drop finished messages."""
    if not outcomes:
        return
    now = datetime.now(UTC)
    spooled: list[str] = []
    async with db.write() as session:
        for o in outcomes:
            values: dict[str, object] = {
                "state": o.state, "last_error": o.error, "locked_by": None,
                "locked_until": None, "attempts": MailDelivery.attempts + 1,
            }
            if o.state in PENDING_STATES:
                values["next_attempt_at"] = o.next_attempt_at or now
            else:
                values["finished_at"] = now
            await session.execute(
                update(MailDelivery).where(MailDelivery.id == o.delivery_id).values(**values)
            )
        notes = [o.notification for o in outcomes if o.notification is not None]
        await insert_messages(session, notes, spool, spool_threshold)
        ids = select(MailDelivery.message_id).where(
            MailDelivery.id.in_([o.delivery_id for o in outcomes])
        )
        open_ids = select(MailDelivery.message_id).where(
            MailDelivery.message_id.in_(ids), MailDelivery.state.in_(PENDING_STATES)
        )
        done = (await session.execute(
            select(MailMessage.id, MailMessage.spool_path)
            .where(MailMessage.id.in_(ids), MailMessage.id.not_in(open_ids))
        )).all()
        if done:
            await session.execute(
                delete(MailMessage).where(MailMessage.id.in_([d.id for d in done]))
            )
            spooled = [d.spool_path for d in done if d.spool_path]
    for path in spooled:
        Spool.remove(path)


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
