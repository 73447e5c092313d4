"""Send every query of a corpus to two servers and collect the differences."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .compare import STRICT, Difference, Rules, compare
from .corpus import Query
from .send import Endpoint, Exchange, exchange

RETRIES = 2


@dataclass(frozen=True, slots=True)
class Outcome:
    query: Query
    left: Exchange
    right: Exchange
    differences: tuple[Difference, ...]


@dataclass(frozen=True, slots=True)
class RunResult:
    left: str
    right: str
    outcomes: tuple[Outcome, ...]

    @property
    def differences(self) -> list[Difference]:
        return [d for o in self.outcomes for d in o.differences]

    @property
    def failures(self) -> list[Difference]:
        return [d for d in self.differences if d.fails]

    def unanswered(self, side: str) -> list[str]:
        """Queries the left or right server never answered (a comparison with nothing)."""
        left = side == self.left
        return [o.query.source for o in self.outcomes if not (o.left if left else o.right).wires]


def run(
    queries: Sequence[Query],
    left: Endpoint,
    right: Endpoint,
    *,
    timeout_s: float = 2.0,
    workers: int = 8,
    rules: Rules = STRICT,
) -> RunResult:
    def one(query: Query) -> Outcome:
        a = exchange(query, left, timeout_s)
        b = exchange(query, right, timeout_s)
        # A lost datagram on a busy machine is not a finding: ask again before comparing.
        for _ in range(RETRIES):
            if a.error != "timeout" and b.error != "timeout":
                break
            a = exchange(query, left, timeout_s) if a.error == "timeout" else a
            b = exchange(query, right, timeout_s) if b.error == "timeout" else b
        return Outcome(query, a, b, tuple(compare(query, left.name, a, right.name, b, rules)))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = tuple(pool.map(one, queries))
    return RunResult(left=left.name, right=right.name, outcomes=outcomes)
