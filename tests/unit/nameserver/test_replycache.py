"""The reply cache: exact hits, case-folded hits with the question re-spelled, generations."""

from __future__ import annotations

import dns.message

from nameserver.options import NameserverOptions
from nameserver.replycache import ReplyCache
from nameserver.responder import Responder
from tests.unit.nameserver.ask import make_query
from tests.unit.nameserver.zones import table

PEER = ("192.0.2.1", 5353)


def wire(qname: str, qid: int = 7) -> bytes:
    query = make_query(qname, "A")
    query.id = qid
    return query.to_wire()


def test_case_variants_share_one_entry_and_echo_their_own_spelling() -> None:
    responder = Responder(table(), NameserverOptions())
    first = responder.udp(wire("c1.zh.test"), PEER)
    assert first is not None
    cache = responder._caches["udp"]  # white box: one entry serves every spelling
    assert len(cache) == 1
    for spelling in ("C1.ZH.TEST", "c1.Zh.tEsT", "c1.zh.test"):
        reply = responder.udp(wire(spelling, 99), PEER)
        assert reply is not None and len(cache) == 1
        message = dns.message.from_wire(reply)
        assert message.id == 99
        assert message.question[0].name.to_text() == spelling + "."
        assert message.answer[0].name.to_text() == spelling + "."  # points at the question
        # the chain itself is unchanged by the spelling
        assert [r.to_text().lower() for r in message.answer] == [
            r.to_text().lower() for r in dns.message.from_wire(first).answer
        ]


def test_first_spelling_mixed_case_is_stored_folded() -> None:
    responder = Responder(table(), NameserverOptions())
    mixed = responder.udp(wire("WWW.zh.test"), PEER)
    lower = responder.udp(wire("www.zh.test"), PEER)
    assert mixed is not None and lower is not None
    assert dns.message.from_wire(lower).question[0].name.to_text() == "www.zh.test."
    assert dns.message.from_wire(mixed).question[0].name.to_text() == "WWW.zh.test."
    assert len(responder._caches["udp"]) == 1


def test_other_bytes_are_not_folded() -> None:
    cache: ReplyCache[tuple[bytes, object, object, object, object]] = ReplyCache(10)
    query = wire("www.zh.test")
    entry = (query[2:], None, None, None, ())
    cache.put(query, query.find(0, 12) + 1, entry)
    assert cache.get(query) == entry
    other_flags = query[:2] + b"\x01" + query[3:]  # RD set: a different query
    assert cache.get(other_flags) is None


def test_generations_keep_busy_entries() -> None:
    cache: ReplyCache[tuple[bytes, object, object, object, object]] = ReplyCache(4)
    queries = [wire(f"h{i}.zh.test") for i in range(6)]
    for q in queries:
        cache.put(q, q.find(0, 12) + 1, (q[2:], None, None, None, ()))
        assert cache.get(queries[0]) is not None  # used all along: never evicted
    assert cache.get(queries[1]) is None
    assert len(cache) <= 4
