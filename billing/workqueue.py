"""The operator work queue behind the built-in registry gateway.

`zonehost orders list` shows the open items; `zonehost orders done ID`
closes one (for a transfer-code request, with the code the registry gave,
stored encrypted). An order whose items are all done becomes done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.audit import audit
from billing.config import BillingConfig
from billing.errors import InvalidRequest, NotFound, Unavailable
from billing.gateway import RegistryOp
from billing.portfolio import get_domain, store_transfer_code
from storage.models.billing import Order, OrderLine, OrderStatus, WorkItem, WorkStatus
from storage.zones import Actor


class WorkItemNotFound(NotFound):
    """This work item does not exist."""


@dataclass(frozen=True, slots=True)
class WorkView:
    id: int
    kind: str
    domain: str
    account_id: int | None
    order_number: str | None
    status: WorkStatus
    payload: dict[str, Any]
    created_at: datetime
    created_by: str
    done_by: str | None
    note: str


_HIDDEN = ("auth_code_sealed",)  # never shown, even to operators' terminals


async def list_work(
    session: AsyncSession, *, status: WorkStatus | None = WorkStatus.OPEN, limit: int = 500
) -> list[WorkView]:
    query = (select(WorkItem, Order.number).outerjoin(Order, Order.id == WorkItem.order_id)
             .order_by(WorkItem.id).limit(limit))
    if status is not None:
        query = query.where(WorkItem.status == status)
    return [
        WorkView(w.id, w.kind, w.domain_name.rstrip("."), w.account_id, number, w.status,
                 {k: v for k, v in w.payload.items() if k not in _HIDDEN}, w.created_at,
                 w.created_by, w.done_by, w.note)
        for w, number in (await session.execute(query))
    ]


async def complete(
    session: AsyncSession, config: BillingConfig, item_id: int, actor: Actor, *,
    note: str = "", transfer_code: str | None = None, cancel: bool = False,
) -> WorkView:
    item = await session.get(WorkItem, item_id, with_for_update=True)
    if item is None:
        raise WorkItemNotFound(f"work item {item_id} does not exist")
    if item.status is not WorkStatus.OPEN:
        raise Unavailable(f"work item {item_id} is already {item.status.value}")
    if item.kind == RegistryOp.TRANSFER_CODE and not cancel:
        if not transfer_code:
            raise InvalidRequest(["a transfer-code request is done with --code CODE"])
        domain = await get_domain(session, item.domain_name, for_update=True)
        if domain is None:
            raise Unavailable(f"{item.domain_name} is no longer in the portfolio")
        store_transfer_code(config, domain, transfer_code)
    item.status = WorkStatus.CANCELLED if cancel else WorkStatus.DONE
    item.done_by = actor.label
    item.done_at = datetime.now(UTC)
    item.note = note
    await session.flush()
    audit(session, actor, f"billing.work.{item.status.value}", "work_item", str(item.id),
          account_id=item.account_id, after={"kind": item.kind, "note": note})
    order_number = None
    if item.order_id is not None:
        order = await session.get(Order, item.order_id, with_for_update=True)
        if order is not None:
            order_number = order.number
            await _maybe_finish(session, order, item)
    return WorkView(item.id, item.kind, item.domain_name.rstrip("."), item.account_id,
                    order_number, item.status, dict(item.payload), item.created_at,
                    item.created_by, item.done_by, item.note)


async def _maybe_finish(session: AsyncSession, order: Order, item: WorkItem) -> None:
    if item.status is WorkStatus.DONE and item.kind != RegistryOp.REFUND:
        for line in (await session.execute(
            select(OrderLine).where(OrderLine.order_id == order.id,
                                    OrderLine.domain_name == item.domain_name)
        )).scalars():
            line.done = True
    still_open = await session.scalar(
        select(func.count(WorkItem.id)).where(WorkItem.order_id == order.id,
                                              WorkItem.status == WorkStatus.OPEN)
    )
    if not still_open and order.status is OrderStatus.IN_PROGRESS:
        order.status = OrderStatus.DONE
        order.completed_at = datetime.now(UTC)
