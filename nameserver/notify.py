"""NOTIFY (RFC 1996): telling secondaries a zone changed, and answering NOTIFY.

`Notifier.zone_changed(origin, serial)` is called by the feed follower after
each committed change it applied. It only records the newest serial and, if
no delivery is running for that (zone, secondary), starts one; it never
waits, so the query path is never held up. A delivery sends a NOTIFY over
UDP and waits for the matching response; without one it retries with
doubling delays, up to `attempts` times. Changes arriving meanwhile are
folded into the running delivery (one NOTIFY per zone and secondary in
flight, always for the newest serial); a change after a delivery succeeded
starts a new one.

We are a primary only: a NOTIFY sent to us is answered as NSD answers it
for a zone it is primary for, a header-only REFUSED, and a header-only
NXDOMAIN for a name that is not one of our zones.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
import struct
from dataclasses import dataclass

import dns.exception
import dns.message

from nameserver.index import ZoneTable, name_to_wire
from nameserver.message import AA, QR, Opcode, Query, Rcode
from nameserver.rrwire import SOA
from nameserver.tsig import Signer, TsigKey

log = logging.getLogger(__name__)

Target = tuple[str, int]
_HEADER = struct.Struct("!HHHHHH")
CLASS_IN = 1


class TargetError(ValueError):
    """A NOTIFY target is not an IP address with an optional port."""


def parse_target(text: str, default_port: int = 53) -> Target:
    """'192.0.2.1', '192.0.2.1:5399', '[2001:db8::1]:53' or '2001:db8::1'."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise TargetError(f"invalid notify target {text!r}")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        address = ipaddress.ip_address(host)
        port = int(port_text) if port_text else default_port
    except ValueError as exc:
        raise TargetError(f"invalid notify target {text!r}: need IP[:PORT]") from exc
    if not 0 < port < 65536:
        raise TargetError(f"invalid notify target {text!r}: port out of range")
    return str(address), port


@dataclass(frozen=True, slots=True)
class NotifyOptions:
    timeout_s: float = 2.0  # wait for a response to one NOTIFY
    attempts: int = 5  # NOTIFYs sent per change before giving up
    backoff_s: float = 1.0  # pause after the first unanswered attempt; doubles
    max_backoff_s: float = 30.0
    concurrency: int = 32  # NOTIFYs in flight at once, all zones together


def notify_message(origin: str, message_id: int) -> bytes:
    """A NOTIFY for `origin`: opcode NOTIFY, AA, question (origin, SOA, IN)."""
    flags = (Opcode.NOTIFY << 11) | AA
    return (
        _HEADER.pack(message_id, flags, 1, 0, 0, 0)
        + name_to_wire(origin)
        + struct.pack("!HH", SOA, CLASS_IN)
    )


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, message_id: int) -> None:
        self.message_id = message_id
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        if len(data) < 12 or self.done.done():
            return
        message_id, flags = struct.unpack_from("!HH", data)
        if message_id == self.message_id and flags & QR and (flags >> 11) & 0xF == Opcode.NOTIFY:
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable and the like: an unanswered attempt


class Notifier:
    """Sends NOTIFY to every target on each change; see the module docstring."""

    def __init__(
        self,
        targets: tuple[Target, ...],
        *,
        key: TsigKey | None = None,
        options: NotifyOptions | None = None,
    ) -> None:
        self.targets = targets
        self.key = key
        self.options = options or NotifyOptions()
        self._latest: dict[tuple[str, Target], int] = {}
        self._tasks: dict[tuple[str, Target], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._idle = asyncio.Event()
        self._idle.set()
        self.sent = 0  # NOTIFY messages sent
        self.answered = 0  # deliveries acknowledged

    def zone_changed(self, origin: str, serial: int) -> None:
        """Record a committed change; returns at once. Call on the event loop."""
        for target in self.targets:
            key = (origin, target)
            self._latest[key] = serial
            if key not in self._tasks:
                self._idle.clear()
                task = asyncio.get_running_loop().create_task(
                    self._deliver(key), name=f"notify {origin} {target[0]}:{target[1]}"
                )
                self._tasks[key] = task
                task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: tuple[str, Target], _task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)
        self._latest.pop(key, None)
        if not self._tasks:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Until no delivery is running (for tests and shutdown)."""
        await self._idle.wait()

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, key: tuple[str, Target]) -> None:
        origin, target = key
        options = self.options
        sent_serial: int | None = None
        attempt = 0
        delay = options.backoff_s
        while True:
            serial = self._latest[key]
            if serial != sent_serial:  # a newer change: fresh attempts
                sent_serial, attempt, delay = serial, 0, options.backoff_s
            attempt += 1
            try:
                async with self._slots:
                    rcode = await self._send_once(origin, target)
            except OSError as exc:
                log.warning("notify zone=%s target=%s: %s", origin, _show(target), exc)
                rcode = None
            if rcode is not None:
                self.answered += 1
                if rcode != Rcode.NOERROR:
                    log.warning(
                        "notify zone=%s target=%s answered rcode %d",
                        origin, _show(target), rcode,
                    )
                else:
                    log.info("notify zone=%s serial=%d target=%s acknowledged",
                             origin, serial, _show(target))
                if self._latest[key] == serial:
                    return
                continue
            if attempt >= options.attempts:
                log.warning(
                    "notify zone=%s serial=%d target=%s: no response after %d attempts",
                    origin, serial, _show(target), attempt,
                )
                if self._latest[key] == serial:
                    return
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, options.max_backoff_s)

    async def _send_once(self, origin: str, target: Target) -> int | None:
        """One NOTIFY; the response's rcode, or None without a (valid) response."""
        message_id = secrets.randbelow(0x10000)
        wire = notify_message(origin, message_id)
        signer = Signer(self.key) if self.key is not None else None
        if signer is not None:
            wire = signer.sign(wire)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: _Reply(message_id), remote_addr=target
        )
        try:
            transport.sendto(wire)
            self.sent += 1
            try:
                reply = await asyncio.wait_for(protocol.done, self.options.timeout_s)
            except TimeoutError:
                return None
        finally:
            transport.close()
        if signer is not None and not self._signed_by_key(reply, signer):
            log.warning("notify zone=%s target=%s: response not signed with our key",
                        origin, _show(target))
            return None
        return reply[3] & 0xF

    def _signed_by_key(self, reply: bytes, signer: Signer) -> bool:
        assert self.key is not None
        try:
            dns.message.from_wire(
                reply,
                keyring={self.key.name: self.key.to_dnspython()},
                request_mac=signer.last_mac or b"",
                ignore_trailing=True,
            )
        except dns.exception.DNSException:
            return False
        return True


def _show(target: Target) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NotifyResponder:
    """Answers NOTIFY sent to us (responder.NotifyHandler), as NSD does."""

    def __init__(self, table: ZoneTable) -> None:
        self.table = table

    def notify(self, query: Query, peer: tuple[str, int]) -> bytes | None:
        rcode = Rcode.REFUSED if query.qname in self.table.index.zones else Rcode.NXDOMAIN
        # NSD keeps the query's flags, sets QR and the rcode, and drops every section.
        flags = (query.flags | QR) & ~0xF | rcode
        return query.message[:2] + struct.pack("!H", flags) + bytes(8)
