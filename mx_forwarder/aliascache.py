"""Each domain's RCPT answers, kept in memory and dropped when the feeds say so.

A domain's `DomainMail` (zone state, mail service, every alias and its
confirmed targets) is read once and kept until the zone feed or the mail
feed names the domain. A RCPT that arrives at time t is answered from data
at least as fresh as t - check_s (default 0.5 s), so a suspension, an alias
removal or a new confirmation takes effect within check_s. The feeds are
read only when mail arrives: a RCPT waits for a read when the last one is
older than check_s, and starts one in the background (without waiting)
when it is older than check_s / 2, so under steady mail no RCPT waits.
With check_s = 0, every RCPT sees every commit made before it arrived, as
an uncached lookup would. Concurrent RCPTs share one feed read and one load
per domain. `max_age_s` bounds what an edit made behind storage's back (no
feed row) can leave stale.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from storage import aliases
from storage.aliases import Address, AliasLookup, DomainMail, FeedPosition
from storage.db import Database


def _consume(task: asyncio.Task[None]) -> None:
    """A read-ahead nobody waited for: its failure shows at the next RCPT's own read."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, slots=True)
class _Entry:
    mail: DomainMail
    loaded_at: float  # monotonic time the load started


@dataclass(frozen=True, slots=True)
class _Load:
    task: asyncio.Task[DomainMail]
    started: float


class AliasCache:
    def __init__(self, db: Database, check_s: float = 0.5, max_age_s: float = 60.0,
                 max_domains: int = 100_000) -> None:
        self._db = db
        self._check_s = max(0.0, check_s)
        self._max_age_s = max_age_s
        self._max_domains = max_domains
        self._entries: dict[str, _Entry] = {}
        self._loads: dict[str, _Load] = {}
        self._position: FeedPosition | None = None
        self._fresh_as_of = float("-inf")  # start time of the last completed feed read
        self._check: asyncio.Task[None] | None = None
        self._epoch = 0  # bumped by each invalidation: a load that straddles one is not kept
        self.hits = 0
        self.misses = 0

    async def lookup(self, address: Address) -> AliasLookup:
        """What to do with mail for `address`; raises what the store raises when it is down."""
        arrived = time.monotonic()
        await self._ensure_fresh(arrived)
        entry = self._entries.get(address.domain)
        if entry is not None and arrived - entry.loaded_at <= self._max_age_s:
            self.hits += 1
            return entry.mail.lookup(address)
        self.misses += 1
        return (await self._load(address.domain, arrived - self._check_s)).lookup(address)

    def clear(self) -> None:
        self._entries.clear()
        self._epoch += 1

    async def _ensure_fresh(self, arrived: float) -> None:
        need = arrived - self._check_s
        while self._fresh_as_of < need:
            task = self._check
            if task is None:
                task = self._check = asyncio.create_task(self._read_feeds())
            await asyncio.shield(task)
        if self._check is None and self._fresh_as_of < arrived - self._check_s / 2:
            # Half the allowance is used: read ahead in the background, so that
            # under steady mail no RCPT ever waits for the feeds.
            self._check = asyncio.create_task(self._read_feeds())
            self._check.add_done_callback(_consume)

    async def _read_feeds(self) -> None:
        started = time.monotonic()
        try:
            async with self._db.read() as session:
                if self._position is None:
                    position = await aliases.feed_position(session)
                    self.clear()
                else:
                    changed = await aliases.changed_domains(session, self._position)
                    position = changed.position
                    if changed.everything:
                        self.clear()
                    elif changed.domains:
                        self._epoch += 1
                        for domain in changed.domains:
                            self._entries.pop(domain, None)
            self._position = position
            self._fresh_as_of = started
        finally:
            self._check = None

    async def _load(self, domain: str, not_before: float) -> DomainMail:
        """The domain's data, read at or after `not_before` (joining a load if one qualifies)."""
        load = self._loads.get(domain)
        if load is None or load.started < not_before:
            load = _Load(asyncio.create_task(self._read_domain(domain)), time.monotonic())
            self._loads[domain] = load
        return await asyncio.shield(load.task)

    async def _read_domain(self, domain: str) -> DomainMail:
        started = time.monotonic()
        epoch = self._epoch
        try:
            async with self._db.read() as session:
                mail = await aliases.load_domain_mail(session, domain)
        finally:
            load = self._loads.get(domain)
            if load is not None and load.task is asyncio.current_task():
                del self._loads[domain]
        if epoch == self._epoch:  # no invalidation ran meanwhile: safe to keep
            if len(self._entries) >= self._max_domains:
                self._entries.clear()
            self._entries[domain] = _Entry(mail, started)
        return mail
