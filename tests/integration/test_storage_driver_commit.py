"""Tx.after_commit(): a callback runs once the transaction's COMMIT is done,
never after a rollback, and at once outside a transaction (PostgreSQL's
`statements()`, each statement committed alone)."""

from __future__ import annotations

import pytest

from storage.db import Database


class Boom(Exception):
    pass


async def test_after_commit_runs_after_the_commit(db: Database) -> None:
    seen: list[str] = []
    async with db.transaction() as tx:
        await tx.execute("UPDATE zones SET serial = serial WHERE id = -1")
        tx.after_commit(lambda: seen.append("committed"))
        assert seen == []  # not before the COMMIT
    assert seen == ["committed"]


async def test_after_commit_never_runs_after_a_rollback(db: Database) -> None:
    seen: list[str] = []
    with pytest.raises(Boom):
        async with db.transaction() as tx:
            tx.after_commit(lambda: seen.append("committed"))
            raise Boom
    assert seen == []
    async with db.transaction() as tx:  # and is not left for the next transaction
        pass
    assert seen == []


async def test_after_commit_outside_a_transaction_runs_at_once(db: Database) -> None:
    seen: list[str] = []
    async with db.statements(queue="zone:x.") as free:
        if free is None:
            pytest.skip("statements outside a transaction: PostgreSQL only")
        free.after_commit(lambda: seen.append("now"))
        assert seen == ["now"]
