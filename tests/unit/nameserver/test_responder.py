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


def _cookie_query(qname: str, cookie: bytes) -> bytes:
    import dns.edns

    return make_query(qname, "A", options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, cookie)]).to_wire()


def _cookie_of(wire: bytes) -> bytes:
    message = dns.message.from_wire(wire)
    return next(bytes(o.to_wire()) for o in message.options if o.otype == 10)


def test_cookie_replies_are_kept_per_client_address() -> None:
    zones = table()
    responder = Responder(zones)
    client = b"\x11" * 8
    first = responder.udp(_cookie_query("www.zh.test", client), PEER)
    assert first is not None
    server_cookie = _cookie_of(first)
    # the resolver now repeats the full cookie pair: same reply, kept for it
    query = _cookie_query("www.zh.test", server_cookie)
    again = responder.udp(query, PEER)
    assert again is not None and _cookie_of(again) == server_cookie
    assert responder.udp(query, PEER) == again and len(responder._cookie_replies) == 2
    # the same bytes from another address get a cookie made for that address
    elsewhere = responder.udp(query, ("198.51.100.9", 53))
    assert elsewhere is not None and _cookie_of(elsewhere) != server_cookie
    # an edit of the zone is seen through the kept reply too
    from storage.snapshot import StoredRRset

    zones.apply_rrsets("zh.test.", 8, [StoredRRset("www.zh.test.", 1, 60, (bytes([192, 0, 2, 99]),))], [])
    edited = dns.message.from_wire(responder.udp(query, PEER) or b"")
    assert [rd.to_text() for rd in edited.answer[0]] == ["192.0.2.99"]
