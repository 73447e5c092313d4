"""Billing's audit rows: who did what to which object, before and after."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry
from storage.zones import Actor


def audit(
    session: AsyncSession, actor: Actor, action: str, object_type: str, object_name: str,
    *, account_id: int | None, before: Any = None, after: Any = None,
) -> None:
    """Add an audit row to the current transaction (never a secret in before/after)."""
    session.add(
        AuditEntry(
            account_id=account_id if actor.account_id is None else actor.account_id,
            user_id=actor.user_id,
            actor=actor.label,
            source_ip=actor.source_ip,
            credential=actor.credential,
            action=action,
            object_type=object_type,
            object_name=object_name,
            before=before,
            after=after,
        )
    )
