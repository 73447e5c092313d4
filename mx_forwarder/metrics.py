"""Prometheus metrics of the forwarder, counters labelled by outcome."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SESSIONS = Counter("zonehost_mx_sessions", "SMTP sessions opened")
ACCEPTED = Counter("zonehost_mx_accepted_messages", "messages queued durably (250 sent)")
ACCEPTED_RECIPIENTS = Counter("zonehost_mx_accepted_recipients", "recipients accepted")
REJECTED = Counter("zonehost_mx_rejected", "refused commands, by reason", ["reason"])
DELIVERED = Counter("zonehost_mx_delivered", "deliveries completed (per target)")
DEFERRED = Counter("zonehost_mx_deferred", "delivery attempts failed temporarily")
BOUNCED = Counter("zonehost_mx_bounced", "deliveries failed for good (per target)")
DSN_SENT = Counter("zonehost_mx_dsn_queued", "delivery-status notifications queued")
QUEUE_DEPTH = Gauge("zonehost_mx_queue_depth", "deliveries waiting (queued or deferred)")
OLDEST_AGE = Gauge("zonehost_mx_queue_oldest_age_seconds", "age of the oldest queued message")
OVERLOADED = Gauge("zonehost_mx_overloaded",
                   "1 while new mail is refused because the queue is over its high-water mark")
LOW_DISK = Gauge("zonehost_mx_low_disk", "1 while new mail is refused for lack of free space")
TARPIT = Counter("zonehost_mx_tarpit_seconds", "seconds MAIL replies were held back (backpressure)")
SIGNING_FAILED = Counter("zonehost_mx_signing_failed", "messages forwarded without our DKIM/ARC")
SIGNING_KEY_PUBLISHED = Gauge(
    "zonehost_mx_signing_key_published",
    "1 when the DKIM key record of our signing domain and selector holds the public key of "
    "signing_key_file, 0 when it is missing or another key (our signatures then fail)",
    ["domain", "selector"])
AUTH_DNS = Counter("zonehost_mx_auth_dns_lookups",
                   "DNS lookups through the forwarder's cache (inbound checks: SPF, DKIM keys, "
                   "DMARC; delivery: MX, A, AAAA; our signing key), by outcome: "
                   "hit (cache), shared (a query in flight), found, nxdomain, nodata, failed",
                   ["outcome"])
AUTH_DNS_HIT = AUTH_DNS.labels("hit")
