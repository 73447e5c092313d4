"""The responder's own decisions: CHAOS identity, NOTIFY and transfers without handlers."""

from __future__ import annotations

import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass

from nameserver.options import NameserverOptions
from nameserver.responder import Responder
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.zones import table

PEER = ("192.0.2.1", 5353)


def ask(responder: Responder, query: dns.message.Message, tcp: bool = False) -> dns.message.Message:
    reply = (responder.tcp if tcp else responder.udp)(query.to_wire(), PEER)
    assert isinstance(reply, bytes)
    return dns.message.from_wire(reply)


def test_chaos_identity_when_configured() -> None:
    responder = Responder(table(), NameserverOptions(version="zonehost 1", identity="ns-a"))
    version = ask(responder, make_query("version.bind", "TXT", rdclass="CH"))
    assert version.rcode() == dns.rcode.NOERROR
    assert version.answer[0].rdclass == dns.rdataclass.CH
    assert version.answer[0][0].strings == (b"zonehost 1",)
    ident = ask(responder, make_query("id.server", "TXT", rdclass="CH"))
    assert ident.answer[0][0].strings == (b"ns-a",)
    other = ask(responder, make_query("authors.bind", "TXT", rdclass="CH"))
    assert other.rcode() == dns.rcode.REFUSED


def test_chaos_identity_hidden_by_default() -> None:
    responder = Responder(table())
    reply = ask(responder, make_query("version.bind", "TXT", rdclass="CH"))
    assert reply.rcode() == dns.rcode.REFUSED and not reply.answer


def test_notify_without_handler_is_refused_header_only() -> None:
    query = make_query("zh.test", "SOA")
    query.set_opcode(dns.opcode.NOTIFY)
    wire = Responder(table()).udp(query.to_wire(), PEER)
    assert wire is not None and len(wire) == 12 and wire[3] & 0xF == dns.rcode.REFUSED


def test_transfers_without_handler() -> None:
    responder = Responder(table())
    assert ask(responder, make_query("zh.test", "AXFR")).rcode() == dns.rcode.NOTIMP  # UDP
    assert ask(responder, make_query("zh.test", "AXFR"), tcp=True).rcode() == dns.rcode.REFUSED
    assert ask(responder, make_query("nowhere.test", "AXFR"), tcp=True).rcode() == dns.rcode.NOTAUTH
