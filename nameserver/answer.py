"""The answer engine: a parsed query and a zone index in, an `Answer` out.

Pure: no sockets, no clocks, no logging on the normal path. It answers as
NSD 4.6 does with `minimal-responses: yes` (no NS RRset in the authority
section of positive answers), and additionally adds A/AAAA for NS, MX and
SRV targets of the same zone to the additional section, as NSD's default and
Knot do. Where NSD and Knot differ we follow NSD:
- CNAME chains are followed into every hosted zone (Knot stops at the zone
  boundary) and, like NSD, with no length limit short of the message size:
  a chain stops silently at a name already in it (loop), with NOERROR and
  what was collected, and the renderer keeps what fits (TC over UDP).
- ANY (RFC 8482 section 4.1) answers one RRset of the node: the SOA at an
  apex, otherwise the RRset of the lowest type. A CNAME is returned, not
  followed.
- A query of class ANY is answered from class IN data with AA clear; other
  classes are REFUSED (CHAOS TXT version.bind/id.server when configured).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nameserver.index import EMPTY, Node, Zone, ZoneIndex, find_rrset
from nameserver.message import (
    EDE_NOT_AUTHORITATIVE,
    EDE_NOT_SUPPORTED,
    EDE_PROHIBITED,
    Answer,
    Outcome,
    Placed,
    Query,
    Rcode,
    ede,
)
from nameserver.rrwire import (
    AAAA,
    ANY,
    AXFR,
    CNAME,
    DNAME,
    DS,
    IXFR,
    MX,
    NS,
    SOA,
    SRV,
    A,
    PreparedRRset,
    prepare_rrset,
)

CLASS_IN, CLASS_CH, CLASS_ANY = 1, 3, 255
# CNAME/DNAME links followed in one answer: more than a 64 KiB message holds
# (a compressed CNAME record takes at least 14 octets), so only the message
# size limits a chain, as in NSD, while the work per query stays bounded.
MAX_CHAIN = 65535 // 14 + 1

_ADDITIONAL_FOR = frozenset({NS, MX, SRV})
_EDE_DNAME_TOO_LONG = ede(0, "DNAME expansion became too large")


@dataclass(frozen=True, slots=True)
class Chaos:
    """CHAOS-class TXT answers (name wire -> prepared TXT RRset, class CH)."""

    rrsets: Mapping[bytes, PreparedRRset]


_REFUSED = Answer(Outcome.REFUSED, Rcode.REFUSED, False, options=(EDE_NOT_AUTHORITATIVE,))
_REFUSED_CLASS = Answer(
    Outcome.REFUSED, Rcode.REFUSED, False, options=(EDE_NOT_SUPPORTED,), echo_question=False
)
_REFUSED_CHAOS = Answer(Outcome.REFUSED, Rcode.REFUSED, False, options=(EDE_NOT_SUPPORTED,))
_REFUSED_CHAOS_HIDDEN = Answer(Outcome.REFUSED, Rcode.REFUSED, False, options=(EDE_PROHIBITED,))
_NOTAUTH = Answer(Outcome.NOTAUTH, Rcode.NOTAUTH, False)
_CHAOS_NAMES = frozenset({
    b"\x07version\x04bind\x00", b"\x07version\x06server\x00",
    b"\x02id\x06server\x00", b"\x08hostname\x04bind\x00",
})


def answer(query: Query, index: ZoneIndex, chaos: Chaos | None = None) -> Answer:
    """Answer one standard query from `index`."""
    edns = query.edns
    if edns is not None and edns.version > 0:
        return Answer(Outcome.BADVERS, Rcode.BADVERS, False)
    if query.tsig_offset is not None:
        # Signed queries are for transfers, which xfr handles; RFC 8945 5.2.
        return Answer(Outcome.NOTAUTH, Rcode.NOTAUTH, False)
    qclass = query.qclass
    if qclass != CLASS_IN and qclass != CLASS_ANY:
        if qclass == CLASS_CH:
            return _chaos(query, chaos)
        return _REFUSED_CLASS
    qtype = query.qtype
    if qtype == AXFR or qtype == IXFR:
        # Reached only when no transfer handler took the query: NOTAUTH for a
        # zone we do not have (as NSD), REFUSED for one we do.
        if query.qname not in index.zones:
            return _NOTAUTH
        return _REFUSED
    zone = index.find_zone(query.qname, ds=qtype == DS)
    if zone is None:
        return _REFUSED
    if not zone.active:
        return _REFUSED._replace(zones=(zone,))
    return _resolve(query.qname, qtype, zone, index, qclass == CLASS_IN)


_NOT_AT_QNAME = frozenset({ANY, AXFR, IXFR, DS})


def answer_at_qname(query: Query, index: ZoneIndex) -> tuple[Zone, PreparedRRset] | None:
    """The commonest answer, found without building an `Answer`: the RRset of
    the query type at the query name itself, in an active zone, under no
    delegation or DNAME, needing no additional section. It is what `answer`
    returns in that case (tested so); None means: ask `answer`."""
    qtype = query.qtype
    edns = query.edns
    if (
        query.qclass != CLASS_IN
        or qtype in _NOT_AT_QNAME
        or query.tsig_offset is not None
        or (edns is not None and edns.version)
    ):
        return None
    qname = query.qname
    zone = index.find_zone(qname)
    if zone is None or not zone.active:
        return None
    if zone.cuts or zone.dnames:
        found = zone.lookup(qname)
        if found.cut is not None or found.dname is not None:
            return None
        node = found.node
    else:
        node = zone.nodes.get(qname)
    if not node:
        return None
    rrset = find_rrset(node, qtype)
    if rrset is None or not rrset.records or rrset.rdtype in _ADDITIONAL_FOR:
        return None
    return zone, rrset


def _chaos(query: Query, chaos: Chaos | None) -> Answer:
    rrset = chaos.rrsets.get(query.qname) if chaos is not None else None
    if rrset is None or query.qtype not in (16, ANY):
        hidden = query.qname in _CHAOS_NAMES
        return _REFUSED_CHAOS_HIDDEN if hidden else _REFUSED_CHAOS
    return Answer(Outcome.ANSWER, Rcode.NOERROR, False, ((query.qname, rrset),))


# RFC 1034 section 4.3.2, as the loop below walks it, for `name` in `zone`:
#  1. Find the most specific zone holding the name (done by the caller, and
#     again for each CNAME/DNAME target); no zone: REFUSED.
#  2. Walk down from the apex towards the name. A delegation met on the way
#     (NS below the apex, not the name itself when asking for DS) makes a
#     referral: NS in authority, glue in additional, AA clear unless a CNAME
#     came first. A DNAME met above the name is copied into the answer with a
#     synthesized CNAME (RFC 6672 3.2) and the walk restarts at its target.
#  3. At the name itself: the RRset of the query type is the answer; a CNAME
#     (for any other type) is copied and the walk restarts at its target;
#     otherwise NODATA, the SOA in authority.
#  4. No such name: the wildcard at the closest encloser (RFC 4592) stands in
#     for it, the owner being the query name; no wildcard: NXDOMAIN.
#  Negative answers carry the zone's SOA with the RFC 2308 negative TTL.
def _resolve(qname: bytes, qtype: int, zone: Zone, index: ZoneIndex, aa: bool) -> Answer:
    answer: list[Placed] = []
    chain = 0
    seen = {qname}
    name = qname
    zones = [zone]
    while True:
        found = zone.lookup(name)
        if found.cut is not None and not (found.cut == name and qtype == DS):
            return _referral(zone, found.cut, answer, aa, tuple(zones))
        if found.dname is not None:
            dname = find_rrset(zone.nodes[found.dname], DNAME)
            assert dname is not None
            answer.append((found.dname, dname))
            target = name[: len(name) - len(found.dname)] + dname.targets[0]
            if len(target) > 255:
                return Answer(
                    Outcome.YXDOMAIN, Rcode.YXDOMAIN, aa, tuple(answer), zones=tuple(zones),
                    options=(_EDE_DNAME_TOO_LONG,),
                )
            answer.append((name, prepare_rrset(CNAME, dname.ttl, (target,))))
            if qtype == CNAME:
                break
            next_zone = _next(target, seen, chain, index, zones)
            if next_zone is None:
                break
            zone, name, chain = next_zone, target, chain + 1
            continue
        node = found.node
        if node is None:
            wildcard = zone.nodes.get(found.wildcard_name())
            if wildcard is None:
                return Answer(
                    Outcome.NXDOMAIN,
                    Rcode.NXDOMAIN,
                    aa,
                    tuple(answer),
                    ((zone.origin, zone.negative_soa),),
                    zones=tuple(zones),
                )
            node = wildcard
        if qtype == ANY and node:
            answer.append((name, _any_choice(node)))
            break
        rrset = find_rrset(node, qtype)
        if rrset is not None:
            answer.append((name, rrset))
            additional = _additional(zone, rrset) if rrset.rdtype in _ADDITIONAL_FOR else ()
            return Answer(Outcome.ANSWER, Rcode.NOERROR, aa, tuple(answer), (), additional,
                          zones=tuple(zones))
        cname = find_rrset(node, CNAME)
        if cname is None or qtype == CNAME:
            return Answer(
                Outcome.NODATA if not answer else Outcome.ANSWER,
                Rcode.NOERROR,
                aa,
                tuple(answer),
                ((zone.origin, zone.negative_soa),),
                zones=tuple(zones),
            )
        answer.append((name, cname))
        target = cname.targets[0]
        next_zone = _next(target, seen, chain, index, zones)
        if next_zone is None:
            break
        zone, name, chain = next_zone, target, chain + 1
    return Answer(Outcome.ANSWER, Rcode.NOERROR, aa, tuple(answer), zones=tuple(zones))


def _next(
    target: bytes, seen: set[bytes], chain: int, index: ZoneIndex, zones: list[Zone]
) -> Zone | None:
    """The zone to continue a CNAME/DNAME chain in (noted in `zones`), or None."""
    if target in seen or chain + 1 >= MAX_CHAIN:
        return None
    seen.add(target)
    zone = index.find_zone(target)
    if zone is None:
        return None
    if zone not in zones:
        zones.append(zone)
    return zone if zone.active else None


def _referral(
    zone: Zone, cut: bytes, answer: list[Placed], aa: bool, zones: tuple[Zone, ...]
) -> Answer:
    ns = find_rrset(zone.nodes[cut], NS)
    assert ns is not None
    glue = _additional(zone, ns)
    if answer:  # a CNAME led here: the answer part stays authoritative
        return Answer(Outcome.ANSWER, Rcode.NOERROR, aa, tuple(answer), ((cut, ns),), glue,
                      zones=tuple(zones))
    return Answer(Outcome.REFERRAL, Rcode.NOERROR, False, (), ((cut, ns),), glue,
                  zones=tuple(zones))


def _additional(zone: Zone, rrset: PreparedRRset) -> tuple[Placed, ...]:
    """A and AAAA of the targets that this zone holds (glue included)."""
    out: list[Placed] = []
    nodes = zone.nodes
    for target in rrset.targets:
        node = nodes.get(target, EMPTY)
        for rs in node:
            if rs.rdtype == A or rs.rdtype == AAAA:
                item = (target, rs)
                if item not in out:
                    out.append(item)
    return tuple(out)


def _any_choice(node: Node) -> PreparedRRset:
    soa = find_rrset(node, SOA)
    return soa if soa is not None else node[0]
