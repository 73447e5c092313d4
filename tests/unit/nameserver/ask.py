"""Run one query through parse -> answer -> render, without sockets."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype

from nameserver.answer import answer
from nameserver.index import ZoneTable
from nameserver.wire import parse_query, render, udp_limit


def make_query(qname: str, qtype: str, edns: bool = True, **kwargs: Any) -> dns.message.Message:
    query = dns.message.make_query(qname, dns.rdatatype.from_text(qtype), use_edns=0 if edns else False, **kwargs)
    query.flags &= ~dns.flags.RD
    return query


def ask(table: ZoneTable, qname: str, qtype: str, limit: int | None = None, **kwargs: Any) -> dns.message.Message:
    wire = make_query(qname, qtype, **kwargs).to_wire()
    query = parse_query(wire)
    ans = answer(query, table.index)
    reply = render(ans, query, limit or udp_limit(query, 1232))
    return dns.message.from_wire(reply)


def lines(section: list[dns.rrset.RRset]) -> set[str]:
    """Every record of a section as 'owner ttl TYPE rdata' (lower-case owner)."""
    out = set()
    for rrset in section:
        for rd in rrset:
            out.add(
                f"{rrset.name.to_text().lower()} {rrset.ttl} "
                f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
            )
    return out
