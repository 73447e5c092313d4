"""Gapless number sequences (orders, invoices).

Taking a number increments the counter row inside the caller's
transaction: the UPDATE locks the row until commit, so concurrent payments
queue on it (PostgreSQL row lock; SQLite's write lock), and a rolled-back
transaction gives its number back. No number is skipped or used twice.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models.billing import Counter

ORDER = "order"
INVOICE = "invoice"


async def next_value(session: AsyncSession, name: str) -> int:
    value = (await session.execute(
        update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
        .returning(Counter.value)
    )).scalar_one_or_none()
    if value is None:  # the migration seeds the counters; this only rebuilds a lost row
        session.add(Counter(name=name, value=1))
        await session.flush()
        return 1
    return int(value)


async def current_value(session: AsyncSession, name: str) -> int:
    value = (await session.execute(
        select(Counter.value).where(Counter.name == name)
    )).scalar_one_or_none()
    return int(value or 0)
