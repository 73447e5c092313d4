"""TCP transport (RFC 7766): length-prefixed messages, pipelined.

Each connection is its own asyncio protocol: messages are answered in the
order they arrive, as soon as they are complete, and written without
waiting for the client to read. A client that stops reading fills its write
buffer to `tcp_max_buffer_bytes`, after which that connection alone stops
being read; a connection with no traffic for `tcp_idle_timeout_s` (or stuck
that long on a full buffer, or on half a message) is closed. Connections
beyond the total or per-address limits are closed on accept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from nameserver.options import NameserverOptions
from nameserver.responder import Peer, Responder, TransferRequest

log = logging.getLogger(__name__)


class TcpServerState:
    """What the connections of one server share: limits and counters."""

    def __init__(self, responder: Responder, options: NameserverOptions) -> None:
        self.responder = responder
        self.options = options
        self.open = 0
        self.per_client: defaultdict[str, int] = defaultdict(int)
        self.connections: set[TcpConnection] = set()

    def protocol(self) -> TcpConnection:
        return TcpConnection(self)

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


class TcpConnection(asyncio.Protocol):
    def __init__(self, state: TcpServerState) -> None:
        self.state = state
        self.transport: asyncio.Transport | None = None
        self.peer: Peer = ("", 0)
        self.buffer = bytearray()
        self.last_activity = time.monotonic()
        self.write_blocked = False
        self.transfer: asyncio.Task[None] | None = None
        self.counted = False
        self._timer: asyncio.TimerHandle | None = None

    # -- lifecycle --------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        state = self.state
        options = state.options
        if (
            state.open >= options.tcp_max_connections
            or state.per_client[self.peer[0]] >= options.tcp_max_per_client
        ):
            state.responder.metrics.dropped["tcp-limit"] += 1
            transport.abort()
            return
        self.counted = True
        state.open += 1
        state.per_client[self.peer[0]] += 1
        state.connections.add(self)
        state.responder.metrics.tcp_connections = state.open
        transport.set_write_buffer_limits(high=options.tcp_max_buffer_bytes)
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.transfer is not None:
            self.transfer.cancel()
        if self.counted:
            state = self.state
            self.counted = False
            state.open -= 1
            state.per_client[self.peer[0]] -= 1
            if state.per_client[self.peer[0]] <= 0:
                del state.per_client[self.peer[0]]
            state.connections.discard(self)
            state.responder.metrics.tcp_connections = state.open

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- idle timeout -----------------------------------------------------
    def _arm_timer(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.state.options.tcp_idle_timeout_s, self._check_idle)

    def _check_idle(self) -> None:
        idle = time.monotonic() - self.last_activity
        timeout = self.state.options.tcp_idle_timeout_s
        if idle >= timeout and self.transfer is None:
            if self.write_blocked:
                self.abort()  # close() would wait for a buffer the client never reads
            else:
                self._close()
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(timeout - idle, 0.05), self._check_idle)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- flow control -----------------------------------------------------
    def pause_writing(self) -> None:
        self.write_blocked = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_blocked = False
        self.last_activity = time.monotonic()
        if self.transport is not None and self.transfer is None:
            self.transport.resume_reading()
            self._process()  # queries left in the buffer while we waited

    # -- messages ---------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        self.buffer += data
        self._process()

    def _process(self) -> None:
        buf = self.buffer
        transport = self.transport
        assert transport is not None
        handle = self.state.responder.tcp
        replies: list[bytes] = []  # written together: one send for a pipelined burst
        pending = 0
        flush_at = self.state.options.tcp_max_buffer_bytes
        pos = 0
        end = len(buf)
        while end - pos >= 2 and self.transfer is None and not self.write_blocked:
            length = (buf[pos] << 8) | buf[pos + 1]
            if end - pos - 2 < length:
                break
            message = bytes(buf[pos + 2 : pos + 2 + length])
            pos += 2 + length
            reply = handle(message, self.peer)
            if reply is None:
                continue
            if isinstance(reply, TransferRequest):
                self._write(replies)
                replies = []
                self._start_transfer(reply)
                break
            replies.append(len(reply).to_bytes(2, "big"))
            replies.append(reply)
            pending += len(reply) + 2
            if pending >= flush_at:  # may call pause_writing(), which ends the loop
                self._write(replies)
                replies = []
                pending = 0
        self._write(replies)
        if pos:
            del buf[:pos]

    def _write(self, chunks: list[bytes]) -> None:
        if chunks and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(chunks))

    def _send(self, message: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(message).to_bytes(2, "big") + message)

    def _start_transfer(self, request: TransferRequest) -> None:
        handler = self.state.responder.transfers
        assert handler is not None and self.transport is not None
        self.transport.pause_reading()
        self.transfer = asyncio.ensure_future(handler.transfer(request.query, self.peer, self._send))
        self.transfer.add_done_callback(self._transfer_done)

    def _transfer_done(self, task: asyncio.Task[None]) -> None:
        self.transfer = None
        self.last_activity = time.monotonic()
        if not task.cancelled() and task.exception() is not None:
            log.error("transfer failed peer=%s: %r", self.peer[0], task.exception())
            self.abort()
            return
        if self.transport is not None and not self.transport.is_closing():
            if not self.write_blocked:
                self.transport.resume_reading()
            self._process()
