"""Zone fixtures for the nameserver tests: master files turned into snapshots."""

from __future__ import annotations

import textwrap

from nameserver.index import ZoneTable
from nameserver.zonefile import from_text
from storage.snapshot import ZoneSnapshot

# RFC 4592 section 2.2.1, verbatim records.
RFC4592 = """
$ORIGIN example.
example.                 3600 IN  SOA   ns.example.com. hostmaster.example. 1 7200 3600 1209600 3600
example.                 3600     NS    ns.example.com.
example.                 3600     NS    ns.example.net.
*.example.               3600     TXT   "this is a wildcard"
*.example.               3600     MX    10 host1.example.
sub.*.example.           3600     TXT   "this is not a wildcard"
host1.example.           3600     A     192.0.2.1
_ssh._tcp.host1.example. 3600     SRV   0 0 22 host1.example.
_ssh._tcp.host2.example. 3600     SRV   0 0 22 host2.example.
subdel.example.          3600     NS    ns.example.com.
subdel.example.          3600     NS    ns.example.net.
"""

PARENT = """
$ORIGIN zh.test.
$TTL 3600
@        IN SOA ns1.zh.test. hostmaster.zh.test. 7 7200 3600 1209600 300
@           NS    ns1
@           NS    ns2.other.test.
@           MX    10 mail
@           A     192.0.2.1
ns1         A     192.0.2.53
ns1         AAAA  2001:db8::53
www     300 A     192.0.2.10
www     300 A     192.0.2.11
mail        A     192.0.2.25
mail        AAAA  2001:db8::25
_sip._udp   SRV   10 60 5060 mail
c1          CNAME c2
c2          CNAME www
cother      CNAME www.other.test.
cout        CNAME www.example.net.
cnx         CNAME nowhere
cloop1      CNAME cloop2
cloop2      CNAME cloop1
cdeleg      CNAME host.sub
cwild       CNAME x.wild
*.wild      A     192.0.2.100
*.wild      TXT   "wild"
exists.wild A     192.0.2.101
*.wc        CNAME www
a.b.c.ent   A     192.0.2.200
sub         NS    ns1.sub
sub         NS    ns.other.test.
sub         DS    12345 13 2 ddc6e2b224d0fd821669202258386936fc9ce2899e215eec6322b95f8dd96d6a
ns1.sub     A     192.0.2.54
nods        NS    ns.example.net.
dn          DNAME other.test.
dn          A     192.0.2.140
dnin        DNAME inner.zh.test.
x.inner     A     192.0.2.150
dnlong      DNAME aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc.example.net.
child       NS    ns1.child
ns1.child   A     192.0.2.55
big         TXT   "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT   "1123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT   "2123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT   "3123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT   "4123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
big         TXT   "5123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
"""

CHILD = """
$ORIGIN child.zh.test.
$TTL 1800
@        IN SOA ns1.child.zh.test. hostmaster.zh.test. 3 7200 3600 1209600 600
@           NS    ns1
ns1         A     192.0.2.55
www         A     203.0.113.10
"""

OTHER = """
$ORIGIN other.test.
$TTL 3600
@        IN SOA ns.other.test. hostmaster.other.test. 1 7200 3600 1209600 900
@           NS    ns
ns          A     198.51.100.53
www         A     198.51.100.80
cback       CNAME c1.zh.test.
"""

SUSPENDED = """
$ORIGIN suspended.test.
@  3600 IN SOA ns.other.test. hostmaster.other.test. 1 7200 3600 1209600 900
@  3600    NS  ns.other.test.
@  3600    A   192.0.2.99
"""


def snapshot(text: str, origin: str, zone_id: int = 1, active: bool = True) -> ZoneSnapshot:
    zone = from_text(textwrap.dedent(text), origin, zone_id)
    if active:
        return zone
    return ZoneSnapshot(zone.zone_id, zone.origin, zone.serial, False, zone.rrsets)


def all_snapshots() -> list[ZoneSnapshot]:
    return [
        snapshot(RFC4592, "example.", 1),
        snapshot(PARENT, "zh.test.", 2),
        snapshot(CHILD, "child.zh.test.", 3),
        snapshot(OTHER, "other.test.", 4),
        snapshot(SUSPENDED, "suspended.test.", 5, active=False),
    ]


def table() -> ZoneTable:
    return ZoneTable.from_snapshots(all_snapshots())
