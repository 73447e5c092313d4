"""The proof: a real Knot DNS 3.2 secondary follows zonehost.

Knot is configured as a secondary of zonehost on loopback, with TSIG on
every transfer and NOTIFY. It bootstraps the corpus zones by AXFR, then
answers as zonehost does; an edit through storage reaches zonehost's feed
follower, which sends NOTIFY; Knot transfers the change by IXFR and answers
the new data. Runs on SQLite, and on PostgreSQL when configured.
Needs the Debian package `knot` (knotd); skipped without it.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from nameserver.notify import NotifyOptions
from nameserver.xfr import TransferConfig
from tests.conftest import REPO_ROOT
from tests.e2e.xfr_fixtures import drop, edit, import_zone, put, run_primary
from tests.refservers import (
    HOST,
    ServerFailed,
    ServerUnavailable,
    _user_and_group,
    find_binary,
    free_port,
    stop,
    wait_for_zones,
)

CORPUS = REPO_ROOT / "tests" / "corpus" / "zonehost"
ORIGINS = ["alpha.test.", "beta.test.", "child.alpha.test.", "example.test."]
SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
TIMEOUT_S = 20.0

# (qname, qtype): answers, negative answers, referrals, wildcards, CNAMEs across zones.
QUERIES = [
    ("alpha.test.", "SOA"),
    ("alpha.test.", "NS"),
    ("alpha.test.", "MX"),
    ("www.alpha.test.", "A"),
    ("www.alpha.test.", "AAAA"),
    ("www.alpha.test.", "MX"),
    ("nothing.alpha.test.", "A"),
    ("mixedcase.alpha.test.", "A"),
    ("multi.alpha.test.", "TXT"),
    ("caa.alpha.test.", "CAA"),
    ("sshfp.alpha.test.", "SSHFP"),
    ("unknown.alpha.test.", "TYPE65280"),
    ("foo.wild.alpha.test.", "A"),
    ("c1.alpha.test.", "A"),
    ("www.sub.alpha.test.", "A"),
    ("a.b.c.ent.alpha.test.", "A"),
    ("c.ent.alpha.test.", "A"),
    ("beta.test.", "SOA"),
    ("child.alpha.test.", "NS"),
    ("host1.example.test.", "A"),
]


def ask(port: int, qname: str, qtype: str) -> dns.message.Message:
    query = dns.message.make_query(qname, dns.rdatatype.from_text(qtype), use_edns=0)
    query.flags &= ~dns.flags.RD
    return dns.query.tcp(query, HOST, port=port, timeout=5)


def summary(message: dns.message.Message) -> tuple[object, ...]:
    """What must match: rcode, AA, and the answer and authority records."""

    def section(rrsets: list[dns.rrset.RRset]) -> frozenset[str]:
        return frozenset(
            f"{rrset.name.to_text().lower()} {rrset.ttl} "
            f"{dns.rdatatype.to_text(rrset.rdtype)} {rdata.to_text()}"
            for rrset in rrsets
            for rdata in rrset
        )

    return (
        dns.rcode.to_text(message.rcode()),
        bool(message.flags & dns.flags.AA),
        section(message.answer),
        section(message.authority),
    )


def differences(zonehost_port: int, knot_port: int, queries: list[tuple[str, str]]) -> list[str]:
    out = []
    for qname, qtype in queries:
        ours, theirs = ask(zonehost_port, qname, qtype), ask(knot_port, qname, qtype)
        if summary(ours) != summary(theirs):
            out.append(f"{qname} {qtype}:\n  zonehost {summary(ours)}\n  knot     {summary(theirs)}")
    return out


@contextmanager
def knot_secondary(workdir: Path, port: int, primary_port: int) -> Iterator[Path]:
    """knotd as a secondary of the primary; yields its log file."""
    try:
        binary = find_binary("knotd")
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    for sub in ("run", "db", "zones"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    zones = "".join(
        f'  - domain: "{origin}"\n    master: zonehost\n    acl: notify_from_zonehost\n'
        for origin in ORIGINS
    )
    conf = workdir / "knot.conf"
    conf.write_text(
        "server:\n"
        f'    rundir: "{workdir / "run"}"\n'
        f"    user: {_user_and_group()}\n"
        f"    listen: {HOST}@{port}\n"
        f'    pidfile: "{workdir / "knot.pid"}"\n'
        "    udp-workers: 1\n"
        "    tcp-workers: 1\n"
        "    background-workers: 1\n"
        "control:\n"
        f'    listen: "{workdir / "run" / "knot.sock"}"\n'
        "log:\n"
        "  - target: stderr\n"
        "    any: info\n"
        "database:\n"
        f'    storage: "{workdir / "db"}"\n'
        "key:\n"
        "  - id: xfr-key\n"
        "    algorithm: hmac-sha256\n"
        f"    secret: {SECRET}\n"
        "remote:\n"
        "  - id: zonehost\n"
        f"    address: {HOST}@{primary_port}\n"
        "    key: xfr-key\n"
        "acl:\n"
        "  - id: notify_from_zonehost\n"
        f"    address: {HOST}\n"
        "    key: xfr-key\n"
        "    action: notify\n"
        "template:\n"
        "  - id: default\n"
        f'    storage: "{workdir / "zones"}"\n'
        "    zonefile-sync: -1\n"
        "    zonefile-load: none\n"
        "    semantic-checks: off\n"
        "zone:\n" + zones
    )
    log_path = workdir / "knot.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_for_zones(HOST, port, ORIGINS, proc, log_path, TIMEOUT_S)
        yield log_path
    except ServerFailed as exc:
        raise AssertionError(f"Knot did not get the zones from zonehost: {exc}") from exc
    finally:
        stop(proc)


def wait_for(port: int, qname: str, qtype: str, expected: str, log_path: Path) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        reply = ask(port, qname, qtype)
        if any(expected in rdata.to_text() for rrset in reply.answer for rdata in rrset):
            return
        if time.monotonic() > deadline:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"Knot never served {qname} {qtype} {expected}:\n{tail}")
        time.sleep(0.05)


def transfers(log_path: Path, origin: str) -> list[str]:
    """Knot's log lines for incoming transfers of `origin` ('AXFR'/'IXFR')."""
    pattern = re.compile(rf"\[{re.escape(origin)}\] (AXFR|IXFR), incoming, .*finished")
    return [m.group(1) for m in pattern.finditer(log_path.read_text(errors="replace"))]


def test_knot_follows_zonehost(database_url: str, tmp_path: Path) -> None:
    for origin in ORIGINS:
        import_zone(database_url, origin, (CORPUS / f"{origin}zone").read_text())
    knot_port = free_port()
    config = TransferConfig.from_texts(
        allow_transfer=[],  # the key is the only way in
        tsig_keys=[f"xfr-key:hmac-sha256:{SECRET}"],
        notify=[f"{HOST}:{knot_port}"],
        notify_tsig_key="xfr-key",
    )
    notify = NotifyOptions(timeout_s=1.0, attempts=10, backoff_s=0.2, max_backoff_s=1.0)
    with (
        run_primary(database_url, config, notify) as primary,
        knot_secondary(tmp_path / "knot", knot_port, primary.port) as log_path,
    ):
        assert transfers(log_path, "alpha.test.") == ["AXFR"]
        assert differences(primary.port, knot_port, QUERIES) == []

        serial = edit(
            database_url, "alpha.test.",
            put("alpha.test.", "www", "A", "192.0.2.12", ttl=300),
            put("alpha.test.", "new", "AAAA", "2001:db8::77"),
            drop("alpha.test.", "multi", "TXT"),
        ).serial
        wait_for(knot_port, "new.alpha.test.", "AAAA", "2001:db8::77", log_path)
        assert ask(knot_port, "alpha.test.", "SOA").answer[0][0].serial == serial
        assert transfers(log_path, "alpha.test.") == ["AXFR", "IXFR"]

        serial = edit(
            database_url, "alpha.test.", put("alpha.test.", "@", "MX", "5 mail"),
        ).serial
        wait_for(knot_port, "alpha.test.", "MX", "5 mail.alpha.test.", log_path)
        assert ask(knot_port, "alpha.test.", "SOA").answer[0][0].serial == serial
        assert transfers(log_path, "alpha.test.") == ["AXFR", "IXFR", "IXFR"]

        after = [*QUERIES, ("new.alpha.test.", "AAAA"), ("multi.alpha.test.", "A")]
        assert differences(primary.port, knot_port, after) == []
        assert ask(knot_port, "multi.alpha.test.", "TXT").rcode() == dns.rcode.NXDOMAIN

        # A whole-zone import is not a diff: Knot gets an AXFR-style IXFR.
        text = (CORPUS / "beta.test.zone").read_text() + "\nimported A 192.0.2.222\n"
        serial = import_zone(database_url, "beta.test.", text).serial
        wait_for(knot_port, "imported.beta.test.", "A", "192.0.2.222", log_path)
        assert ask(knot_port, "beta.test.", "SOA").answer[0][0].serial == serial
        assert differences(primary.port, knot_port, [("imported.beta.test.", "A")]) == []
        assert "[beta.test.] IXFR, incoming, remote" in log_path.read_text()
        assert transfers(log_path, "beta.test.") == ["AXFR", "AXFR"]  # the second one AXFR-style
        assert transfers(log_path, "example.test.") == ["AXFR"]  # untouched zones stay put
