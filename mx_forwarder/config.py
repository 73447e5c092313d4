"""The forwarder's configuration: one frozen value built by zonehost.config."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_CONFIRM_URL = "http://127.0.0.1:8053/api/v1/mail/confirm/{token}"  # the zone API's page


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    listen: tuple[str, int] = ("127.0.0.1", 2525)
    hostname: str = field(default_factory=socket.getfqdn)  # banner, Received, authserv-id
    tls_cert: str | None = None  # STARTTLS offered when both are set
    tls_key: str | None = None
    # SMTP limits
    max_message_bytes: int = 10 * 1024 * 1024
    max_recipients: int = 100
    max_connections: int = 500
    max_connections_per_client: int = 20
    max_messages_per_client_per_minute: int = 600
    command_timeout_s: float = 300.0
    data_timeout_s: float = 600.0
    max_hops: int = 30
    # alias cache: an RCPT answer is never older than this (0: every RCPT sees
    # every commit); under steady mail the feeds are read ahead, so no RCPT waits
    alias_cache_check_s: float = 0.5
    alias_cache_max_age_s: float = 60.0  # bounds edits made without a feed row
    # SRS
    srs_domain: str = "localhost.localdomain"
    srs_keys: tuple[bytes, ...] = ()
    srs_max_age_days: int = 21
    # delivery
    resolver: tuple[str, int] | None = None  # None: the system resolver
    transport: Mapping[str, tuple[str, int]] = field(
        default_factory=lambda: MappingProxyType({})
    )  # domain -> (host, port), like Postfix's transport_maps
    delivery_port: int = 25
    delivery_concurrency: int = 20
    connect_timeout_s: float = 30.0
    delivery_timeout_s: float = 120.0
    dns_timeout_s: float = 5.0
    lease_s: float = 300.0  # a claimed delivery returns to the queue after this
    retry_base_s: float = 300.0
    retry_max_s: float = 4000.0
    max_queue_age_s: float = 5 * 86400.0
    poll_interval_s: float = 1.0
    # Names this process's leases in the shared queue. A restarted process with
    # the same name takes back at once what its killed predecessor had leased
    # (instead of waiting lease_s). Default: hostname and SMTP address; give
    # several delivery-only workers on one host names of their own.
    instance: str | None = None
    # storage
    spool_dir: str | None = None  # messages over spool_threshold_bytes go to files here
    spool_threshold_bytes: int = 256 * 1024
    sync_commit: bool = True  # SQLite: synchronous=FULL for queue writes (power-loss safe)
    # backpressure, in deliveries waiting (zonehost_mx_queue_depth), see overload.py
    overload_high: int = 100_000  # new mail gets 451 4.3.2 from this depth on (0: never) ...
    overload_low: int = 80_000  # ... until the queue is down to this
    overload_tarpit_from: int = 50_000  # MAIL replies slowed from this depth on (0: never) ...
    overload_tarpit_max_delay_s: float = 1.0  # ... by up to this, reached at overload_high
    overload_check_s: float = 1.0  # how often the shared queue is counted
    min_free_bytes: int = 100 * 1024 * 1024  # less free for the queue: 452 4.3.1 (0: no check)
    overload_write_wait_s: float = 10.0  # a queue write waiting this long: 451 4.3.2 (0: never)
    # our own signatures (signing.py): DKIM-Signature and/or ARC set, d=signing_domain
    sign_dkim: bool = False
    sign_arc: bool = False  # needs auth_results: the seal carries them
    signing_domain: str | None = None  # default: srs_domain
    signing_selector: str = "zonehost"
    signing_key_file: str | None = None  # RSA private key, PEM (PKCS#1 or PKCS#8)
    # features
    auth_results: bool = True  # SPF/DKIM/DMARC -> Authentication-Results
    confirm_url: str = DEFAULT_CONFIRM_URL  # "{token}" is replaced
    run_smtp: bool = True
    run_delivery: bool = True
