"""Query statistics per domain: the nameserver's per-zone counters, which it
flushes into the store (storage.nsstatus), by day, query type and rcode.

Counts are per hosted zone and per UTC day; a domain whose zone is not
hosted here has none. Types and rcodes are shown as mnemonics ("AAAA",
"NXDOMAIN"); the nameserver files types it does not know under 0, shown
as "other".
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import dns.rcode
import dns.rdatatype
from sqlalchemy.ext.asyncio import AsyncSession

from billing.errors import InvalidRequest
from billing.names import canonical, shown
from storage import nsstatus

MAX_DAYS = 366  # one request covers at most a year (and a leap day)
DEFAULT_DAYS = 30  # without `since`: the last 30 days, today included
CSV_COLUMNS = ("day", "qtype", "rcode", "queries")


@dataclass(frozen=True, slots=True)
class StatRow:
    day: date
    qtype: str
    rcode: str
    queries: int


@dataclass(frozen=True, slots=True)
class DomainStats:
    domain: str  # as shown, without the trailing dot
    since: date
    until: date
    rows: tuple[StatRow, ...]  # by day, then type and rcode numbers

    @property
    def total(self) -> int:
        return sum(r.queries for r in self.rows)

    def per_day(self) -> list[tuple[date, int]]:
        """Every day of the period with its total, days without queries as 0."""
        totals: Counter[date] = Counter()
        for r in self.rows:
            totals[r.day] += r.queries
        days = (self.until - self.since).days + 1
        return [(d, totals[d]) for d in (self.since + timedelta(n) for n in range(days))]

    def by_qtype(self) -> dict[str, int]:
        return _totals((r.qtype, r.queries) for r in self.rows)

    def by_rcode(self) -> dict[str, int]:
        return _totals((r.rcode, r.queries) for r in self.rows)


def _totals(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Summed per key, the largest first."""
    totals: Counter[str] = Counter()
    for key, n in pairs:
        totals[key] += n
    return dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0])))


def qtype_text(value: int) -> str:
    if value == 0:
        return "other"
    try:
        return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(value))
    except ValueError:
        return str(value)


def rcode_text(value: int) -> str:
    try:
        return dns.rcode.to_text(dns.rcode.Rcode.make(value))
    except ValueError:
        return str(value)


def period(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """The period asked for: `until` defaults to today, `since` to 30 days before it."""
    until = until or today
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    reasons = []
    if since > until:
        reasons.append(f"the period starts ({since}) after it ends ({until})")
    elif (until - since).days + 1 > MAX_DAYS:
        reasons.append(f"the period spans more than {MAX_DAYS} days")
    if reasons:
        raise InvalidRequest(reasons)
    return since, until


async def domain_stats(
    session: AsyncSession, domain_name: str, since: date, until: date
) -> DomainStats:
    """The zone `domain_name`'s counts, days in [since, until]."""
    name = canonical(domain_name)
    counts = await nsstatus.query_counts(session, name, since, until)
    rows = tuple(StatRow(day, qtype_text(t), rcode_text(r), n)
                 for day, t, r, n in counts if n > 0)
    return DomainStats(shown(name), since, until, rows)


def to_csv(stats: DomainStats) -> str:
    """One row per day, type and rcode (the days without queries have none)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in stats.rows:
        writer.writerow([r.day.isoformat(), r.qtype, r.rcode, r.queries])
    return out.getvalue()
