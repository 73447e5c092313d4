"""Authentication-Results and its DNS cache over real UDP: `zonehost
nameserver` serves the senders' SPF, DKIM key and DMARC records; the cache
keeps answers for their TTL (positive) or the SOA's negative TTL, shares
lookups in flight, and a resolver that is down or silent gives temperror
within the time limit while the SMTP server goes on serving others."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import authres
import dkim
import dns.asyncquery
import dns.message
import dns.rdatatype
import pytest
from prometheus_client import REGISTRY

from mx_forwarder.authres import INLINE_MAX_BYTES, DnsAuthChecker
from mx_forwarder.dnscache import DnsCache, Status
from mx_forwarder.service import start_forwarder
from storage.db import Database
from tests.conftest import REPO_ROOT
from tests.e2e.mx_support import (
    SOA,
    Nameserver,
    RawClient,
    Sink,
    add_alias,
    add_zone,
    config,
    import_zones,
    rsa_key,
    zonehost_nameserver,
)

PEM, KEY_TXT = rsa_key()

ZONES = {
    "sender.test": '@ 300 IN TXT "v=spf1 include:_spf.sender.test -all"\n'
                   '_spf 300 IN TXT "v=spf1 ip4:192.0.2.0/24 include:_more.sender.test -all"\n'
                   '_more 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
                   '_dmarc 300 IN TXT "v=DMARC1; p=reject"\n'
                   f"s1._domainkey 300 IN TXT {KEY_TXT}\n",
    "twice.test": '_dmarc 300 IN TXT "v=DMARC1; p=reject"\n'
                  '_dmarc 300 IN TXT "v=DMARC1; p=none"\n',
    "ttl.test": 'short 60 IN TXT "one"\nempty 60 IN A 192.0.2.1\n',
}
BODY = b"Hello.\r\n"


def message(from_domain: str = "sender.test", selector: bytes = b"s1",
            body: bytes = BODY) -> bytes:
    plain = (f"From: Alice <alice@{from_domain}>\r\nTo: contact@hosted.test\r\n"
             "Subject: checked\r\n\r\n").encode() + body
    return bytes(dkim.sign(plain, selector, from_domain.encode(), PEM,
                           include_headers=[b"from", b"to", b"subject"])) + plain


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    await import_zones(cli_env, tmp_path, ZONES)
    async with zonehost_nameserver(cli_env, probe="sender.test.") as server:
        yield server


async def reimport(cli_env: dict[str, str], tmp_path: Path, zone: str, records: str,
                   ns: Nameserver, name: str, rdtype: str) -> None:
    """Replace `zone` in the store; return once the nameserver serves `name` `rdtype`."""
    path = tmp_path / f"{zone}.new.zone"
    path.write_text(f"$ORIGIN {zone}.\n" + SOA.format(z=zone) + records)
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "zonehost", "zone", "import", zone, str(path)],
        env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    query = dns.message.make_query(name, rdtype)
    for _ in range(200):
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=ns.port, timeout=2)
        if reply.answer:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name} {rdtype} never served")


class Silent:
    """A UDP 'resolver' that reads queries and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    def received(self) -> int:
        count = 0
        while True:
            try:
                self.sock.recv(4096)
            except BlockingIOError:
                return count
            count += 1


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.sock.close()


async def test_checks_pass_through_an_spf_include_chain_then_come_from_the_cache(
        nameserver: Nameserver) -> None:
    cache = DnsCache(("127.0.0.1", nameserver.port), 2.0)
    checker = DnsAuthChecker("mx.test", None, 2.0, cache=cache)
    data = message()
    header = await checker.check(client_ip="127.0.0.1", helo="client.test",
                                 mail_from="alice@sender.test", data=data)
    assert header == (b"Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=sender.test"
                      b";\r\n\tdkim=pass header.d=sender.test;\r\n\tdmarc=pass "
                      b"header.from=sender.test\r\n")
    # three SPF records, the key, _dmarc: all kept
    assert len(cache) == 5
    entries = dict(cache._entries)
    hits = REGISTRY.get_sample_value("zonehost_mx_auth_dns_lookups_total", {"outcome": "hit"})
    again = await checker.check(client_ip="127.0.0.1", helo="client.test",
                                mail_from="alice@sender.test", data=data)
    assert again == header
    assert REGISTRY.get_sample_value("zonehost_mx_auth_dns_lookups_total",
                                     {"outcome": "hit"}) == (hits or 0) + 5
    assert dict(cache._entries).keys() == entries.keys()
    assert all(cache._entries[k][0] == entries[k][0] for k in entries)  # nothing fetched anew
    # a client outside the SPF record fails SPF, DKIM still passes and aligns
    other = await checker.results(client_ip="198.51.100.7", helo="client.test",
                                  mail_from="alice@sender.test", data=data)
    assert (other.spf, other.dkim, other.dmarc) == ("fail", (("pass", "sender.test"),), "pass")


async def test_dkim_and_dmarc_outcomes(nameserver: Nameserver) -> None:
    checker = DnsAuthChecker("mx.test", ("127.0.0.1", nameserver.port), 2.0)
    data = message()
    tampered = data.replace(BODY, b"Hello!\r\n")
    r = await checker.results(client_ip="198.51.100.7", helo="c.test",
                              mail_from="bob@ttl.test", data=tampered)
    assert (r.spf, r.dkim, r.dmarc) == ("none", (("fail", "sender.test"),), "fail")
    big = message(body=b"x" * 998 + b"\r\n" + BODY * 20_000)  # over INLINE_MAX_BYTES
    assert len(big) > INLINE_MAX_BYTES
    r = await checker.results(client_ip="127.0.0.1", helo="c.test",
                              mail_from="alice@sender.test", data=big)
    assert r.dkim == (("pass", "sender.test"),)  # verified in a thread
    r = await checker.results(client_ip="127.0.0.1", helo="c.test",
                              mail_from="alice@sender.test", data=big.replace(BODY, b"Hello!\r\n"))
    assert r.dkim == (("fail", "sender.test"),)
    malformed = data.replace(b" bh=", b" xh=", 1)  # no body hash tag
    r = await checker.results(client_ip="127.0.0.1", helo="c.test",
                              mail_from="alice@sender.test", data=malformed)
    assert r.dkim == (("permerror", "sender.test"),)
    no_key = message(selector=b"gone")
    r = await checker.results(client_ip="127.0.0.1", helo="c.test",
                              mail_from="alice@sender.test", data=no_key)
    assert r.dkim == (("permerror", "sender.test"),)  # RFC 6376 6.1.2: no key
    assert r.dmarc == "pass"  # SPF aligned
    twice = message(from_domain="twice.test")
    r = await checker.results(client_ip="127.0.0.1", helo="ttl.test", mail_from="", data=twice)
    assert r.dmarc == "none"  # two DMARC records: no policy (RFC 7489 6.6.3)
    assert r.spf == "none" and r.spf_domain == "ttl.test"  # null sender: the HELO name


async def test_answers_expire_with_their_ttl(nameserver: Nameserver, cli_env: dict[str, str],
                                             tmp_path: Path) -> None:
    clock = Clock()
    cache = DnsCache(("127.0.0.1", nameserver.port), 2.0, clock=clock)
    first = await cache.lookup("short.ttl.test", "TXT")
    assert first.status is Status.FOUND and first.records[0].to_text() == '"one"'
    await reimport(cli_env, tmp_path, "ttl.test", 'short 60 IN TXT "two"\n', nameserver,
                   "short.ttl.test.", "TXT")
    clock.now += 59
    assert (await cache.lookup("short.ttl.test", "TXT")) is first  # within the TTL
    clock.now += 1
    second = await cache.lookup("SHORT.ttl.test.", "TXT")
    assert second.records[0].to_text() == '"two"'


async def test_ttls_are_capped(nameserver: Nameserver) -> None:
    clock = Clock()
    cache = DnsCache(("127.0.0.1", nameserver.port), 2.0, clock=clock, max_ttl_s=10)
    await cache.lookup("_dmarc.sender.test", "TXT")
    assert cache._entries[("_dmarc.sender.test", dns.rdatatype.TXT)][0] == clock.now + 10
    off = DnsCache(("127.0.0.1", nameserver.port), 2.0, max_entries=0)
    assert (await off.lookup("_dmarc.sender.test", "TXT")).status is Status.FOUND
    assert len(off) == 0


@pytest.mark.parametrize(("name", "rdtype", "status", "add"), [
    ("_dmarc.ttl.test", "TXT", Status.NXDOMAIN, '_dmarc 60 IN TXT "v=DMARC1; p=none"\n'),
    ("empty.ttl.test", "TXT", Status.NODATA, 'empty 60 IN TXT "now here"\n'),
])
async def test_negative_answers_kept_for_the_soa_negative_ttl(
        nameserver: Nameserver, cli_env: dict[str, str], tmp_path: Path, name: str,
        rdtype: str, status: Status, add: str) -> None:
    clock = Clock()
    # the zones' SOA: TTL 300, MINIMUM 300 -> negative TTL 300 (RFC 2308 5), capped at 30
    cache = DnsCache(("127.0.0.1", nameserver.port), 2.0, clock=clock, negative_ttl_s=30)
    assert (await cache.lookup(name, rdtype)).status is status
    await reimport(cli_env, tmp_path, "ttl.test",
                   'short 60 IN TXT "one"\nempty 60 IN A 192.0.2.1\n' + add, nameserver,
                   name + ".", rdtype)
    clock.now += 29
    assert (await cache.lookup(name, rdtype)).status is status  # still the cached negative
    clock.now += 1
    assert (await cache.lookup(name, rdtype)).status is Status.FOUND


async def test_resolver_silent_gives_temperror_once_per_failure_ttl(silent: Silent) -> None:
    clock = Clock()
    cache = DnsCache(("127.0.0.1", silent.port), 0.3, clock=clock, failure_ttl_s=5)
    checker = DnsAuthChecker("mx.test", None, 0.3, cache=cache)
    header = await checker.check(client_ip="127.0.0.1", helo="c.test",
                                 mail_from="alice@sender.test", data=message())
    assert b"spf=temperror" in header and b"dkim=temperror header.d=sender.test" in header
    assert b"dmarc=temperror" in header
    assert silent.received() == 3  # SPF record, key, _dmarc: one query each, together
    header = await checker.check(client_ip="127.0.0.1", helo="c.test",
                                 mail_from="alice@sender.test", data=message())
    assert b"spf=temperror" in header and silent.received() == 0  # the failure is kept
    clock.now += 5
    lookups = [cache.lookup("x.sender.test", "TXT") for _ in range(10)]
    assert {a.status for a in await asyncio.gather(*lookups)} == {Status.FAILED}
    assert silent.received() == 1  # ten lookups in flight at once: one query
    assert (await cache.lookup("_dmarc.sender.test", "TXT")).status is Status.FAILED
    assert silent.received() == 1  # expired: asked again


async def test_resolver_refusing_gives_temperror() -> None:
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    port = int(closed.getsockname()[1])
    closed.close()  # nothing there: ICMP port unreachable
    checker = DnsAuthChecker("mx.test", ("127.0.0.1", port), 0.5)
    r = await checker.results(client_ip="127.0.0.1", helo="c.test",
                              mail_from="alice@sender.test", data=message())
    assert (r.spf, r.dkim, r.dmarc) == ("temperror", (("temperror", "sender.test"),),
                                        "temperror")


async def test_slow_resolver_holds_up_only_its_own_message(db: Database,
                                                          silent: Silent) -> None:
    """While one message waits for its lookups, another session is served."""
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    sink = await Sink().start()
    handle = await start_forwarder(
        config(resolver=("127.0.0.1", silent.port), delivery_port=sink.port,
               auth_results=True, dns_timeout_s=1.0, run_delivery=False), db)
    try:
        assert handle.port is not None
        slow = await RawClient.connect(handle.port)
        for line in (b"EHLO a.test\r\n", b"MAIL FROM:<alice@sender.test>\r\n",
                     b"RCPT TO:<contact@hosted.test>\r\n", b"DATA\r\n"):
            await slow.cmd(line)
        slow.writer.write(message() + b".\r\n")
        await slow.writer.drain()
        waiting = asyncio.create_task(slow.reply())
        while silent.received() == 0:  # the slow message's lookups have gone out
            await asyncio.sleep(0.01)
        other = await RawClient.connect(handle.port)
        assert (await other.cmd(b"EHLO b.test\r\n")).startswith("250")
        assert (await other.cmd(b"MAIL FROM:<>\r\n")).startswith("250")
        assert (await other.cmd(b"RCPT TO:<contact@hosted.test>\r\n")).startswith("250")
        assert not waiting.done()  # served while the first message still waits
        assert (await waiting).startswith("250")
        await other.close()
        await slow.close()
    finally:
        await handle.close()
        await sink.close()


BAD_INPUT = [  # (client address, HELO, MAIL FROM, message)
    ("127.0.0.1", "h.test", "a@sender.test",
     b"DKIM-Signature: garbage\r\nFrom: a@sender.test\r\n\r\nx\r\n"),
    ("127.0.0.1", "h.test", "a@sender.test",
     b"DKIM-Signature: v=1; a=rsa-sha256; d=sender.test; s=" + b"x" * 300
     + b"; h=from; bh=AAAA; b=AAAA\r\nFrom: a@sender.test\r\n\r\nx\r\n"),
    ("127.0.0.1", "h.test", "a@sender.test",
     b"DKIM-Signature: v=1; d=\xff\xfe.test; s=s1\r\nFrom: a@sender.test\r\n\r\nx\r\n"),
    ("127.0.0.1", "h.test", "a@sender.test",
     "DKIM-Signature: v=1; d=s\u00e9nder.test; s=s1\r\nFrom: a@s\u00e9nder.test\r\n\r\nx\r\n"
     .encode()),
    ("unknown", "h.test", "a@sender.test", b"From: a@[192.0.2.1]\r\n\r\nx\r\n"),
    ("127.0.0.1", "h.test", "a@s\u00e9nder.test", b"From: =?utf-8?q?x?= <a@..>\r\n\r\nx\r\n"),
    ("127.0.0.1", "", "", b"no header at all"),
    ("127.0.0.1", "h.test", "a@sender.test",
     b"ARC-Seal: i=1; cv=none; d=sender.test; s=s1; b=A\r\nARC-Message-Signature: garbage\r\n"
     + b"From: a@sender.test\r\n\r\nx\r\n"),
    ("127.0.0.1", "h.test", "a@sender.test",
     b"".join(b"DKIM-Signature: v=1; d=d%d.test; s=s\r\n" % i for i in range(50))
     + b"From: a@sender.test\r\n\r\nx\r\n"),
]


async def test_bad_input_gives_a_well_formed_header(nameserver: Nameserver) -> None:
    """Whatever comes in, the field parses as RFC 8601 (our ARC seal reads it back)."""
    checker = DnsAuthChecker("mx.test", ("127.0.0.1", nameserver.port), 1.0)
    for client, helo, sender, data in BAD_INPUT:
        header = (await checker.check(client_ip=client, helo=helo, mail_from=sender,
                                      data=data)).decode()
        parsed = authres.AuthenticationResultsHeader.parse(
            header.replace("\r\n\t", " ").strip())
        assert parsed.authserv_id == "mx.test", header
    many = await checker.results(client_ip="127.0.0.1", helo="h.test",
                                 mail_from="a@sender.test", data=BAD_INPUT[-1][3])
    assert len(many.dkim) == 5  # at most five signatures checked
