"""Start and stop the nameserver's listeners; the one entry point for wiring.

`serve(table, listens)` binds UDP and TCP on each (host, port), IPv4 or IPv6
(port 0 picks one free port for both), and returns a `RunningNameserver`
whose `close()` stops everything. With `options.reuse_port`, several worker
processes can each call `serve` on the same addresses (SO_REUSEPORT) and
the kernel spreads queries between them; each worker keeps its own
`ZoneTable` current from the change feed.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from nameserver.index import ZoneTable
from nameserver.metrics import NameserverMetrics
from nameserver.options import NameserverOptions
from nameserver.responder import NotifyHandler, Responder, TransferHandler
from nameserver.tcp import TcpServerState
from nameserver.udp import UdpListener

log = logging.getLogger(__name__)

UDP_RCVBUF_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class RunningNameserver:
    responder: Responder
    addresses: list[tuple[str, int]]  # actual bound (host, port), port 0 resolved
    _udp: list[UdpListener] = field(default_factory=list)
    _tcp: list[asyncio.Server] = field(default_factory=list)
    _tcp_state: TcpServerState | None = None

    @property
    def metrics(self) -> NameserverMetrics:
        return self.responder.metrics

    def close(self) -> None:
        for listener in self._udp:
            listener.close()
        for server in self._tcp:
            server.close()
        if self._tcp_state is not None:
            self._tcp_state.close_all()
        self._udp.clear()

    async def wait_closed(self) -> None:
        for server in self._tcp:
            await server.wait_closed()
        self._tcp.clear()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _socket(family: int, kind: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    if kind == socket.SOCK_DGRAM:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF_BYTES)
        except OSError:
            pass
    sock.setblocking(False)
    return sock


def _bind_pair(host: str, port: int, reuse_port: bool) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket bound to the same (host, port)."""
    family = _family(host)
    for _ in range(50):
        tcp = _socket(family, socket.SOCK_STREAM, reuse_port)
        try:
            tcp.bind((host, port))
            bound = tcp.getsockname()[1]
            udp = _socket(family, socket.SOCK_DGRAM, reuse_port)
            try:
                udp.bind((host, bound))
            except OSError as exc:
                udp.close()
                if port == 0 and exc.errno == errno.EADDRINUSE:
                    tcp.close()
                    continue
                raise
            tcp.listen(1024)
            return tcp, udp
        except BaseException:
            tcp.close()
            raise
    raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")


async def serve(
    table: ZoneTable,
    listens: Sequence[tuple[str, int]],
    options: NameserverOptions | None = None,
    metrics: NameserverMetrics | None = None,
    notify: NotifyHandler | None = None,
    transfers: TransferHandler | None = None,
) -> RunningNameserver:
    """Serve `table` over UDP and TCP on every (host, port) in `listens`."""
    options = options or NameserverOptions()
    responder = Responder(table, options, metrics, notify, transfers)
    loop = asyncio.get_running_loop()
    state = TcpServerState(responder, options)
    running = RunningNameserver(responder, [], _tcp_state=state)
    try:
        for host, port in listens:
            tcp_sock, udp_sock = _bind_pair(host, port, options.reuse_port)
            bound = udp_sock.getsockname()[1]
            listener = UdpListener(udp_sock, responder)
            listener.start(loop)
            running._udp.append(listener)
            server = await loop.create_server(state.protocol, sock=tcp_sock)
            running._tcp.append(server)
            running.addresses.append((host, int(bound)))
            log.info("nameserver listening on %s port %d (udp, tcp)", host, bound)
    except BaseException:
        running.close()
        raise
    index = table.index
    responder.metrics.zones_loaded = len(index.zones)
    responder.metrics.records_loaded = index.record_count
    # The zones loaded so far live as long as the process: keep the cyclic
    # garbage collector from walking their million objects on every full pass
    # (tens of milliseconds of stalled queries each time).
    gc.freeze()
    return running
