"""Prometheus metrics of the API: requests by route, method and status."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "zoneapi_requests_total", "HTTP requests answered by the zone API",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "zoneapi_request_seconds", "Time to answer a zone API request", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
LOGINS = Counter("zoneapi_logins_total", "Login attempts by outcome", ["outcome"])
ZONE_WRITES = Counter("zoneapi_zone_writes_total", "Zone writes by outcome", ["outcome"])
