"""The registry gateway: where registry operations go.

zonehost has no registry connection yet: the built-in gateway puts each
operation in the operator work queue (`zonehost orders list|done`), so a
registrar processes them by hand. A real connection (EPP) implements the
same Protocol and answers `done=True` when the registry confirmed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from billing.audit import audit
from storage.models.billing import WorkItem, WorkStatus
from storage.zones import Actor


class RegistryOp(enum.StrEnum):
    REGISTER = "register"
    TRANSFER_IN = "transfer_in"
    RENEW = "renew"
    RESTORE = "restore"
    OWNER_CHANGE = "owner_change"
    NAMESERVERS = "nameservers"
    LOCK = "lock"
    UNLOCK = "unlock"
    TRANSFER_CODE = "transfer_code"  # ask the registry for the transfer (auth) code
    DELETE = "delete"
    REFUND = "refund"  # not the registry's: money to give back, also an operator task


@dataclass(frozen=True, slots=True)
class RegistryRequest:
    op: RegistryOp
    domain_name: str  # canonical, trailing dot
    account_id: int | None
    order_id: int | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Submission:
    done: bool  # the registry confirmed at once
    work_item_id: int | None = None


class RegistryGateway(Protocol):
    async def submit(
        self, session: AsyncSession, request: RegistryRequest, actor: Actor
    ) -> Submission: ...


class WorkQueueGateway:
    """The built-in gateway: one open work item per operation."""

    async def submit(
        self, session: AsyncSession, request: RegistryRequest, actor: Actor
    ) -> Submission:
        item = WorkItem(
            kind=request.op.value, domain_name=request.domain_name,
            account_id=request.account_id, order_id=request.order_id,
            payload=request.payload, status=WorkStatus.OPEN, created_by=actor.label,
        )
        session.add(item)
        await session.flush()
        audit(session, actor, f"billing.registry.{request.op.value}", "domain",
              request.domain_name, account_id=request.account_id,
              after={"work_item": item.id, **request.payload})
        return Submission(False, item.id)
