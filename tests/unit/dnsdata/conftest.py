"""Fixtures of the DNS data tests."""

from __future__ import annotations

import textwrap

import pytest


@pytest.fixture
def round_trip_zone() -> str:
    """A master file of example.com. with the common types and the odd names:
    TXT with several and long strings, generic types, escapes, IDN, wildcard."""
    long_a, long_b = "a" * 255, "b" * 100
    return textwrap.dedent(
        f"""\
        $ORIGIN example.com.
        $TTL 3600
        @ IN SOA ns1 hostmaster.example.com. 2024010101 7200 3600 1209600 300
        @ NS ns1
        @ NS ns2.example.net.
        @ MX 10 mail
        @ MX 0 .
        @ CAA 0 issue "letsencrypt.org"
        @ CAA 128 iodef "mailto:security@example.com"
        @ TXT "v=spf1 mx -all"
        @ TXT "several" "strings" "in one record"
        dkim._domainkey TXT "{long_a}" "{long_b}"
        ns1 A 192.0.2.1
        www A 192.0.2.2
        www AAAA 2001:db8::2
        blog CNAME www
        _sip._tcp SRV 10 60 5060 sip.example.net.
        _443._tcp.www TLSA 3 1 1 {"ab" * 32}
        www SSHFP 4 2 {"cd" * 32}
        naptr NAPTR 100 10 "u" "E2U+sip" "!^.*$!sip:info@example.com!" .
        sub NS ns.sub
        sub DS 12345 13 2 {"ef" * 32}
        ns.sub A 192.0.2.53
        svc HTTPS 1 . alpn=h2,h3 ipv4hint=192.0.2.1 port=8443
        svc2 SVCB 0 svc.example.net.
        4.2 PTR host.example.net.
        dn DNAME example.net.
        loc LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m
        gen TYPE65280 \\# 4 0a000001
        gen TYPE65281 \\# 0
        *.wild A 192.0.2.9
        bücher A 192.0.2.10
        a\\032b A 192.0.2.11
        a\\.b TXT "dot in a label"
        quote TXT "tab\\009 and \\"quotes\\" and UTF-8 caf\\195\\169"
        """
    )
