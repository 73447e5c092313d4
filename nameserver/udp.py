"""UDP transport: read datagrams, ask the responder, send the reply.

The socket is read straight from the event loop's selector with a batch of
`recvfrom` calls per wake-up, not through an asyncio transport, so a busy
server pays the loop's per-iteration cost once per batch instead of once
per query. A reply that cannot be sent at once (full socket buffer) is
dropped, as a UDP server must not queue without bound.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from nameserver.responder import Responder

log = logging.getLogger(__name__)

BATCH = 64  # datagrams read per wake-up before yielding to other work
MAX_DATAGRAM = 65535


class UdpListener:
    def __init__(self, sock: socket.socket, responder: Responder) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.responder = responder
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._loop is not None and self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def _on_readable(self) -> None:
        recv = self.sock.recvfrom
        send = self.sock.sendto
        handle = self.responder.udp
        for _ in range(BATCH):
            try:
                data, peer = recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. an ICMP error reported on the socket
                continue
            reply = handle(data, peer)
            if reply is not None:
                try:
                    send(reply, peer)
                except OSError:
                    self.responder.metrics.dropped["udp-send"] += 1
