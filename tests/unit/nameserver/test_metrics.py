"""Counters from the responder, exported to Prometheus and drained per zone."""

from __future__ import annotations

import dns.message
from prometheus_client import CollectorRegistry, generate_latest

from nameserver.metrics import NameserverMetrics, ZoneCount
from nameserver.options import NameserverOptions
from nameserver.responder import Responder
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.zones import table

PEER = ("192.0.2.1", 5353)


def test_queries_are_counted_cached_or_not_and_drained_per_zone() -> None:
    metrics = NameserverMetrics()
    responder = Responder(table(), NameserverOptions(), metrics)
    www = make_query("www.zh.test", "A").to_wire()
    for _ in range(3):  # the first computed, the others from the reply cache
        assert responder.udp(www, PEER) is not None
    responder.udp(make_query("nowhere.zh.test", "A").to_wire(), PEER)
    responder.tcp(make_query("www.example.net", "A").to_wire(), PEER)
    assert responder.udp(b"\x00", PEER) is None
    big = dns.message.from_wire(responder.udp(make_query("big.zh.test", "TXT", edns=False).to_wire(), PEER) or b"")
    assert big.flags & 0x0200

    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    assert 'zonehost_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"} 3.0' in text
    assert 'zonehost_dns_queries_total{qtype="A",rcode="NXDOMAIN",transport="udp"} 1.0' in text
    assert 'zonehost_dns_queries_total{qtype="A",rcode="REFUSED",transport="tcp"} 1.0' in text
    assert 'zonehost_dns_truncated_responses_total{transport="udp"} 1.0' in text
    assert 'zonehost_dns_dropped_queries_total{reason="unanswerable"} 1.0' in text

    drained = sorted(metrics.drain(), key=lambda c: (c.rcode, c.qtype))
    assert drained == [
        ZoneCount("zh.test.", "A", "NOERROR", 3),
        ZoneCount("zh.test.", "TXT", "NOERROR", 1),
        ZoneCount("zh.test.", "A", "NXDOMAIN", 1),
    ]
    assert metrics.drain() == []
    # the Prometheus totals are cumulative and survive the drain
    assert 'rcode="NXDOMAIN",transport="udp"} 1.0' in generate_latest(registry).decode()


def test_reload_histogram() -> None:
    metrics = NameserverMetrics()
    with metrics.timed_reload():
        pass
    metrics.observe_reload(0.2)
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    assert "zonehost_dns_reload_seconds_count 2.0" in text
    assert 'zonehost_dns_reload_seconds_bucket{le="0.5"} 2.0' in text
