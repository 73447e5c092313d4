"""Query counters: a plain dict on the hot path, Prometheus at scrape time.

Answering a query costs one `dict[key] += 1` (key = transport, zone, qtype,
rcode). `fold()` moves those counts into the cumulative totals that the
Prometheus collector exports, and into the per-zone counts that `drain()`
hands to whoever flushes them into the store (queries per day per domain).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import dns.rcode
import dns.rdatatype
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# transport, zone origin ("" if none), qtype, rcode
StatKey = tuple[str, str, int, int]


@dataclass(frozen=True, slots=True)
class ZoneCount:
    zone: str
    qtype: str
    rcode: str
    queries: int


def _qtype_label(qtype: int) -> str:
    try:
        return dns.rdatatype.to_text(dns.rdatatype.RdataType(qtype))
    except ValueError:
        return "other"


def _rcode_label(rcode: int) -> str:
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(rcode))
    except ValueError:
        return str(rcode)


_RELOAD_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)


class NameserverMetrics(Collector):
    """Every nameserver counter; register it once with `registry.register()`."""

    def __init__(self) -> None:
        self.hits: defaultdict[StatKey, int] = defaultdict(int)  # hot path
        self.truncated: defaultdict[str, int] = defaultdict(int)  # by transport
        self.dropped: defaultdict[str, int] = defaultdict(int)  # by reason
        self._totals: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._zone_pending: defaultdict[tuple[str, int, int], int] = defaultdict(int)
        self.zones_loaded = 0
        self.records_loaded = 0
        self.tcp_connections = 0
        self._reloads: list[float] = []
        self._reload_count = 0
        self._reload_sum = 0.0
        self._reload_buckets = [0] * len(_RELOAD_BUCKETS)

    def fold(self) -> None:
        hits, self.hits = self.hits, defaultdict(int)
        totals = self._totals
        pending = self._zone_pending
        for (transport, zone, qtype, rcode), n in hits.items():
            totals[(transport, _qtype_label(qtype), _rcode_label(rcode))] += n
            if zone:
                pending[(zone, qtype, rcode)] += n

    def drain(self) -> list[ZoneCount]:
        """Per-zone counts since the last drain, for the store."""
        self.fold()
        pending, self._zone_pending = self._zone_pending, defaultdict(int)
        return [
            ZoneCount(zone, _qtype_label(qtype), _rcode_label(rcode), n)
            for (zone, qtype, rcode), n in pending.items()
        ]

    def observe_reload(self, seconds: float) -> None:
        self._reload_count += 1
        self._reload_sum += seconds
        for i, bound in enumerate(_RELOAD_BUCKETS):
            if seconds <= bound:
                self._reload_buckets[i] += 1

    def timed_reload(self) -> _ReloadTimer:
        return _ReloadTimer(self)

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily]:
        self.fold()
        queries = CounterMetricFamily(
            "zonehost_dns_queries", "Answered DNS queries", labels=["transport", "qtype", "rcode"]
        )
        for (transport, qtype, rcode), n in sorted(self._totals.items()):
            queries.add_metric([transport, qtype, rcode], n)
        yield queries
        truncated = CounterMetricFamily(
            "zonehost_dns_truncated_responses", "Responses sent with TC=1", labels=["transport"]
        )
        for transport, n in sorted(self.truncated.items()):
            truncated.add_metric([transport], n)
        yield truncated
        dropped = CounterMetricFamily(
            "zonehost_dns_dropped_queries", "Queries given no reply", labels=["reason"]
        )
        for reason, n in sorted(self.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        yield GaugeMetricFamily("zonehost_dns_zones_loaded", "Zones in memory",
                                value=self.zones_loaded)
        yield GaugeMetricFamily("zonehost_dns_records_loaded", "Records in memory",
                                value=self.records_loaded)
        yield GaugeMetricFamily("zonehost_dns_tcp_connections", "Open TCP connections",
                                value=self.tcp_connections)
        buckets: list[tuple[str, float]] = [
            (str(b), float(c)) for b, c in zip(_RELOAD_BUCKETS, self._reload_buckets)
        ]
        buckets.append(("+Inf", float(self._reload_count)))
        yield HistogramMetricFamily(
            "zonehost_dns_reload_seconds", "Time to apply a zone load or change",
            buckets=buckets, sum_value=self._reload_sum,
        )


class _ReloadTimer:
    def __init__(self, metrics: NameserverMetrics) -> None:
        self._metrics = metrics
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._metrics.observe_reload(time.perf_counter() - self._start)


def register(metrics: NameserverMetrics, registry: CollectorRegistry) -> None:
    registry.register(metrics)
