"""Internationalised sender domains (RFC 8616): an SMTPUTF8 MAIL FROM domain,
a DKIM d= and a From: domain written in U-labels are looked up in A-labels
(IDNA 2008), so SPF, DKIM and DMARC pass against records that
`zonehost nameserver` serves under the xn-- owner names; the
Authentication-Results field stays ASCII."""

from __future__ import annotations

import asyncio
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path
from types import MappingProxyType

import authres
import dkim
import pytest

from mx_forwarder.authres import DnsAuthChecker
from mx_forwarder.service import start_forwarder
from storage.db import Database
from tests.e2e.mx_support import (
    Nameserver,
    Sink,
    add_alias,
    config,
    import_zones,
    zonehost_nameserver,
)
from tests.e2e.test_mx_authres import KEY_TXT, PEM  # the same test key and its TXT

U_DOMAIN = "Bücher.test"  # the sender writes it so; the zone is stored under its A-labels
A_DOMAIN = "xn--bcher-kva.test"
ZONES = {
    A_DOMAIN: '@ 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"\n'
              '_dmarc 300 IN TXT "v=DMARC1; p=reject"\n'
              f"s1._domainkey 300 IN TXT {KEY_TXT}\n",
    "hosted.test": "@ 300 IN MX 10 mx.zonehost.test.\n",
}


def message(d: str) -> bytes:
    plain = (f"From: Jörg <jörg@{U_DOMAIN}>\r\nTo: contact@hosted.test\r\n"
             "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nHallo.\r\n").encode()
    return bytes(dkim.sign(plain, b"s1", d.encode(), PEM,
                           include_headers=[b"from", b"to", b"subject"])) + plain


@pytest.fixture
async def nameserver(db: Database, cli_env: dict[str, str],
                     tmp_path: Path) -> AsyncIterator[Nameserver]:
    await import_zones(cli_env, tmp_path, ZONES)
    async with zonehost_nameserver(cli_env, probe=A_DOMAIN + ".") as server:
        yield server


def parsed(header: bytes) -> dict[str, tuple[str, str]]:
    """method -> (result, first property value) of an Authentication-Results field."""
    text = header.decode("ascii")  # ASCII or UnicodeDecodeError
    field = authres.AuthenticationResultsHeader.parse(text.replace("\r\n\t", " ").strip())
    return {r.method: (r.result, r.properties[0].value if r.properties else "")
            for r in field.results}


@pytest.mark.parametrize("d", [U_DOMAIN, A_DOMAIN, "bücher.test"])
async def test_u_label_domains_are_checked_in_a_labels(nameserver: Nameserver, d: str) -> None:
    checker = DnsAuthChecker("mx.test", ("127.0.0.1", nameserver.port), 2.0)
    header = await checker.check(client_ip="127.0.0.1", helo="client.test",
                                 mail_from=f"jörg@{U_DOMAIN}", data=message(d))
    assert parsed(header) == {"spf": ("pass", A_DOMAIN), "dkim": ("pass", A_DOMAIN),
                              "dmarc": ("pass", A_DOMAIN)}
    # outside the SPF record: SPF fails, the DKIM signature still aligns
    other = await checker.results(client_ip="198.51.100.7", helo="client.test",
                                  mail_from=f"jörg@{U_DOMAIN}", data=message(d))
    assert (other.spf, other.dkim, other.dmarc) == ("fail", (("pass", A_DOMAIN),), "pass")


async def test_a_domain_idna_refuses_is_no_error(nameserver: Nameserver) -> None:
    checker = DnsAuthChecker("mx.test", ("127.0.0.1", nameserver.port), 2.0)
    header = await checker.check(client_ip="127.0.0.1", helo="client.test",
                                 mail_from="a@-bü-.test",
                                 data="From: a@-bü-.test\r\n\r\nx\r\n".encode())
    assert parsed(header)["spf"][0] in ("none", "permerror")


def smtputf8_send(port: int, sender: str, recipient: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("smtputf8")
        refused = client.sendmail(sender, [recipient], data,
                                  mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}


async def test_smtputf8_sender_passes_spf_end_to_end(db: Database,
                                                    nameserver: Nameserver) -> None:
    await add_alias(db, "contact@hosted.test", "me@dest.test")
    sink = await Sink().start()
    handle = await start_forwarder(config(
        resolver=("127.0.0.1", nameserver.port), auth_results=True, dns_timeout_s=2.0,
        transport=MappingProxyType({"dest.test": ("127.0.0.1", sink.port)})), db)
    data = message(U_DOMAIN)
    try:
        assert handle.port is not None
        await asyncio.to_thread(smtputf8_send, handle.port, f"jörg@{U_DOMAIN}",
                                "contact@hosted.test", data)
        (got,) = await sink.wait_for(1)
    finally:
        await handle.close()
        await sink.close()
    assert got.data.endswith(data)
    ours = b"Authentication-Results:" + got.data.split(b"\r\nAuthentication-Results:")[1]
    ours = ours.split(b"\r\nReceived:")[0]
    assert ours.startswith(b"Authentication-Results: mx.zonehost.test;")
    assert parsed(ours + b"\r\n") == {"spf": ("pass", A_DOMAIN), "dkim": ("pass", A_DOMAIN),
                                      "dmarc": ("pass", A_DOMAIN)}
