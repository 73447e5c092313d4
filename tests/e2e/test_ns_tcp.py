"""TCP per RFC 7766: pipelining, framing edge cases, idle timeout, limits, slow readers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest

from nameserver.options import NameserverOptions
from tests.e2e.ns_fixtures import NsServer, frame, make_query, read_framed, run_nameserver
from tests.unit.nameserver.zones import all_snapshots

OPTIONS = NameserverOptions(
    tcp_idle_timeout_s=0.5, tcp_max_per_client=4, tcp_max_connections=6,
    tcp_max_buffer_bytes=16 * 1024,
)


@pytest.fixture
def server() -> Iterator[NsServer]:
    with run_nameserver(all_snapshots(), OPTIONS) as running:
        yield running


def closed(sock: socket.socket, within_s: float = 3.0) -> bool:
    """True if the server closes (or resets) the connection within the time."""
    sock.settimeout(within_s)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_pipelined_queries_are_all_answered_in_order(server: NsServer) -> None:
    names = [f"{n}.zh.test" for n in ("www", "mail", "nowhere", "c1", "ns1")] * 4
    queries = [make_query(name, "A") for name in names]
    for i, query in enumerate(queries):
        query.id = 1000 + i
    with server.connect() as sock:
        sock.sendall(b"".join(frame(q) for q in queries))
        replies = [dns.message.from_wire(read_framed(sock) or b"") for _ in queries]
    assert [r.id for r in replies] == [q.id for q in queries]
    assert replies[2].rcode() == dns.rcode.NXDOMAIN and replies[0].answer


def test_a_message_split_across_writes_is_answered(server: NsServer) -> None:
    data = frame(make_query("www.zh.test", "A"))
    with server.connect() as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            sock.sendall(data[i : i + 1])
            time.sleep(0.001)
        assert dns.message.from_wire(read_framed(sock) or b"").answer


def test_bad_frames_get_nothing_and_the_connection_goes_on(server: NsServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"\x00\x00")  # empty message
        sock.sendall(b"\x00\x05hello")  # shorter than a header
        sock.sendall(frame(make_query("www.zh.test", "A")))
        reply = dns.message.from_wire(read_framed(sock) or b"")
        assert reply.answer


def test_idle_connection_is_closed(server: NsServer) -> None:
    with server.connect() as sock:
        start = time.monotonic()
        assert closed(sock)
        assert time.monotonic() - start < 2.5


def test_half_a_message_then_silence_is_closed(server: NsServer) -> None:
    with server.connect() as sock:
        sock.sendall(b"\xff\xff" + b"\x00" * 100)  # promises 65535 octets, sends 100
        assert closed(sock)


def test_per_client_limit_refuses_extra_connections_only(server: NsServer) -> None:
    kept = [server.connect() for _ in range(OPTIONS.tcp_max_per_client)]
    try:
        for sock in kept:
            sock.sendall(frame(make_query("www.zh.test", "A")))
            assert read_framed(sock) is not None
        extra = server.connect()
        with extra:
            assert closed(extra, 2.0)
        kept[0].sendall(frame(make_query("mail.zh.test", "A")))
        assert read_framed(kept[0]) is not None
    finally:
        for sock in kept:
            sock.close()
    time.sleep(0.1)
    with server.connect() as again:  # freed slots are usable again
        again.sendall(frame(make_query("www.zh.test", "A")))
        assert read_framed(again) is not None


def test_a_client_that_never_reads_does_not_stall_others(server: NsServer) -> None:
    hog = server.connect()
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        burst = frame(make_query("big.zh.test", "TXT")) * 2000  # ~1.5 MB of replies
        hog.setblocking(False)
        sent = 0
        deadline = time.monotonic() + 2
        while sent < len(burst) and time.monotonic() < deadline:
            try:
                sent += hog.send(burst[sent:])
            except BlockingIOError:
                time.sleep(0.01)
        start = time.monotonic()
        assert server.udp("www.zh.test", "A").answer
        assert server.tcp("www.zh.test", "A").answer
        assert time.monotonic() - start < 1.0
    finally:
        hog.close()


def test_udp_truncation_then_full_answer_over_tcp(server: NsServer) -> None:
    truncated = server.udp("big.zh.test", "TXT", edns=False)
    assert truncated.flags & 0x0200
    full = server.tcp("big.zh.test", "TXT", edns=False)
    assert len(full.answer[0]) == 6


def test_a_long_pipeline_is_answered_in_full_as_the_client_reads(server: NsServer) -> None:
    queries = []
    for i in range(3000):  # ~2 MB of replies, far past the 16 KiB write buffer
        query = make_query("big.zh.test", "TXT")
        query.id = i
        queries.append(frame(query))
    with server.connect() as sock:
        sock.sendall(b"".join(queries))
        ids = []
        for _ in queries:
            reply = read_framed(sock)
            assert reply is not None
            ids.append(int.from_bytes(reply[:2], "big"))
    assert ids == list(range(3000))


def test_total_limit_across_clients_and_udp_unaffected(server: NsServer) -> None:
    socks = []
    try:
        for i in range(OPTIONS.tcp_max_connections):  # one per source address
            sock = socket.create_connection(
                (server.host, server.port), timeout=2, source_address=(f"127.0.0.{10 + i}", 0)
            )
            sock.sendall(frame(make_query("www.zh.test", "A")))
            assert read_framed(sock) is not None
            socks.append(sock)
        extra = socket.create_connection(
            (server.host, server.port), timeout=2, source_address=("127.0.0.99", 0)
        )
        with extra:
            assert closed(extra, 2.0)
        assert server.udp("www.zh.test", "A").answer
    finally:
        for sock in socks:
            sock.close()


def test_hundreds_of_idle_connections_then_service_as_usual() -> None:
    options = NameserverOptions(tcp_idle_timeout_s=0.5, tcp_max_connections=1000,
                                tcp_max_per_client=1000)
    with run_nameserver(all_snapshots(), options) as server:
        idle = [server.connect() for _ in range(300)]
        try:
            assert server.udp("www.zh.test", "A").answer
            assert server.tcp("www.zh.test", "A").answer
            assert all(closed(sock, 3.0) for sock in idle[:20])  # timed out, not kept
        finally:
            for sock in idle:
                sock.close()
