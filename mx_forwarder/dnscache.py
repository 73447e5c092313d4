"""The DNS answers the forwarder needs (SPF, DKIM keys, DMARC, MX), cached
for the life of the process, as OpenDKIM and rspamd keep theirs: mail from
one sender domain arrives in bursts, and each message would otherwise cost
the same four or five round trips.

- An answer is kept for its TTL (the smallest along a CNAME chain), at most
  `max_ttl_s`.
- NXDOMAIN and NODATA are kept for the negative TTL of RFC 2308 section 5
  (the smaller of the authority SOA's TTL and its MINIMUM field), at most
  `negative_ttl_s`; a negative answer without an SOA is not kept.
- A failed lookup (time-out, SERVFAIL, REFUSED, a broken reply) is kept for
  `failure_ttl_s` (RFC 2308 section 7 allows up to five minutes), so that a
  burst of mail during a resolver outage gets its temperror at once, not one
  time-out per message.
- Lookups of the same name and type at the same time share one query.
- At most `max_entries` answers; the least recently used go first. 0 turns
  the cache (and the sharing) off.
- A name in U-labels (an SMTPUTF8 sender's domain, a DKIM d=) is looked up,
  and kept, under its A-labels (IDNA 2008 with the UTS 46 mapping, as the
  store writes names: RFC 8616 section 3).

One cache serves the whole process: the inbound checks, the delivery
workers' MX and address lookups, the check of our own signing key.

Every lookup is asynchronous, on the configured resolver (or the system's),
and ends within `timeout_s`: nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.resolver

from mx_forwarder import metrics
from storage.dnsdata.names import IDNA_CODEC


class Status(enum.Enum):
    FOUND = "found"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    FAILED = "failed"  # time-out, SERVFAIL, REFUSED, broken reply: try again later


@dataclass(frozen=True, slots=True)
class Answer:
    status: Status
    records: tuple[dns.rdata.Rdata, ...] = ()
    error: str = ""  # FAILED: why, for the deferral's log and queue entry


Key = tuple[str, dns.rdatatype.RdataType]

INVALID_NAME = Answer(Status.NXDOMAIN)  # not a DNS name: nothing can exist there


def key(name: str, rdtype: str) -> Key:
    return a_labels(name), dns.rdatatype.RdataType.make(rdtype)


def a_labels(domain: str) -> str:
    """`domain` in A-labels, lower case, without the final dot ('Bücher.test' ->
    'xn--bcher-kva.test'); a name IDNA refuses is left as it is (the lookup
    then finds nothing)."""
    if domain.isascii():
        return domain.lower().rstrip(".")
    try:
        return str(dns.name.from_text(domain, idna_codec=IDNA_CODEC).to_text(True)).lower()
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return domain.lower().rstrip(".")


class DnsCache:
    def __init__(self, resolver: tuple[str, int] | None, timeout_s: float, *,
                 max_entries: int = 10_000, max_ttl_s: float = 3600.0,
                 negative_ttl_s: float = 300.0, failure_ttl_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._resolver = dns.asyncresolver.Resolver(configure=resolver is None)
        if resolver is not None:
            self._resolver.nameservers = [resolver[0]]
            self._resolver.port = resolver[1]
        self._resolver.lifetime = timeout_s
        self._resolver.timeout = min(self._resolver.timeout, timeout_s)
        self._resolver.cache = None  # ours below: TTL caps, negative and failure rules
        self.timeout_s = timeout_s
        self.max_entries = max_entries
        self.max_ttl_s = max_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._entries: OrderedDict[Key, tuple[float, Answer]] = OrderedDict()
        self._pending: dict[Key, asyncio.Future[Answer]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, k: Key) -> Answer | None:
        """The answer in the cache, if it is still fresh (no I/O)."""
        entry = self._entries.get(k)
        if entry is None:
            return None
        expires, answer = entry
        if expires <= self._clock():
            del self._entries[k]
            return None
        self._entries.move_to_end(k)
        metrics.AUTH_DNS_HIT.inc()
        return answer

    async def lookup(self, name: str, rdtype: str) -> Answer:
        k = key(name, rdtype)
        answer = self.cached(k)
        if answer is not None:
            return answer
        if self.max_entries <= 0:
            return await self._query(k)
        pending = self._pending.get(k)
        if pending is None:
            pending = asyncio.ensure_future(self._query(k))
            self._pending[k] = pending
            pending.add_done_callback(lambda done: self._done(k, done))
        else:
            metrics.AUTH_DNS.labels("shared").inc()
        # one waiter giving up (its own time limit) does not cancel the query for the others
        return await asyncio.shield(pending)

    def _done(self, k: Key, done: asyncio.Future[Answer]) -> None:
        if self._pending.get(k) is done:
            del self._pending[k]

    async def _query(self, k: Key) -> Answer:
        name, rdtype = k
        try:
            qname = dns.name.from_text(name, idna_codec=IDNA_CODEC)
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return INVALID_NAME
        ttl_s: float
        try:
            reply = await self._resolver.resolve(qname, rdtype, raise_on_no_answer=False,
                                                 search=False)
        except dns.resolver.NXDOMAIN as exc:
            answer = Answer(Status.NXDOMAIN)
            replies: dict[dns.name.Name, dns.message.Message] = exc.responses()  # type: ignore[no-untyped-call]
            ttl_s = min((_negative_ttl(r) for r in replies.values()), default=0.0)
            ttl_s = min(ttl_s, self.negative_ttl_s)
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            answer = Answer(Status.FAILED, error=str(exc) or type(exc).__name__)
            ttl_s = self.failure_ttl_s
        else:
            if reply.rrset is None:
                answer = Answer(Status.NODATA)
                ttl_s = min(_negative_ttl(reply.response), self.negative_ttl_s)
            else:
                answer = Answer(Status.FOUND, tuple(reply.rrset))
                ttl_s = min(float(reply.chaining_result.minimum_ttl), self.max_ttl_s)
        metrics.AUTH_DNS.labels(answer.status.value).inc()
        self._store(k, answer, ttl_s)
        return answer

    def _store(self, k: Key, answer: Answer, ttl_s: float) -> None:
        if ttl_s <= 0 or self.max_entries <= 0:
            return
        self._entries[k] = (self._clock() + ttl_s, answer)
        self._entries.move_to_end(k)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


def _negative_ttl(response: dns.message.Message) -> float:
    """RFC 2308 section 5: min(SOA TTL, SOA MINIMUM) of the authority's SOA; 0 without one."""
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            soa = cast(dns.rdtypes.ANY.SOA.SOA, rrset[0])
            return float(min(rrset.ttl, soa.minimum))
    return 0.0
