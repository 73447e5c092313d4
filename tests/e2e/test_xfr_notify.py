"""NOTIFY out (RFC 1996): delivery, retries, folding of changes, TSIG.

The secondaries are UDP sockets on 127.0.0.1 owned by the test, which drop,
answer or refuse as each test needs; dnspython checks what they receive.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring
import pytest

from nameserver.notify import Notifier, NotifyOptions
from nameserver.tsig import TsigKey
from nameserver.xfr import TransferConfig
from tests.e2e.xfr_fixtures import edit, import_zone, put, run_primary, shared_database

SECRET = "K2tf3TRjvQkVCmJF3/Z9vA=="
KEY = TsigKey.from_text(f"notify-key:hmac-sha256:{SECRET}")
KEYRING = dns.tsigkeyring.from_text({"notify-key": ("hmac-sha256", SECRET)})
FAST = NotifyOptions(timeout_s=0.3, attempts=4, backoff_s=0.05, max_backoff_s=0.2)
WAIT_S = 10.0


class Secondary(asyncio.DatagramProtocol):
    """Records every NOTIFY; drops the first `drop`, then answers `rcode`
    (signed with the key when the NOTIFY was), or never answers (rcode None)."""

    def __init__(self, drop: int = 0, rcode: int | None = dns.rcode.NOERROR,
                 keyring: object = None, sign_replies: bool = True) -> None:
        self.drop = drop
        self.rcode = rcode
        self.keyring = keyring
        self.sign_replies = sign_replies
        self.received: list[dns.message.Message] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = dns.message.from_wire(data, keyring=self.keyring)  # raises on a bad TSIG
        self.received.append(message)
        if len(self.received) <= self.drop or self.rcode is None:
            return
        reply = dns.message.make_response(message)
        reply.set_rcode(dns.rcode.Rcode(self.rcode))
        if not self.sign_replies:
            reply.tsig = None
        assert self.transport is not None
        self.transport.sendto(reply.to_wire(), addr)


async def start(secondary: Secondary) -> tuple[str, int]:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(lambda: secondary, local_addr=("127.0.0.1", 0))
    assert secondary.transport is not None
    host, port = secondary.transport.get_extra_info("sockname")[:2]
    return str(host), int(port)


async def settle(notifier: Notifier) -> None:
    await asyncio.wait_for(notifier.wait_idle(), WAIT_S)


async def test_notify_is_sent_and_acknowledged() -> None:
    secondary = Secondary()
    notifier = Notifier((await start(secondary),), options=FAST)
    notifier.zone_changed("example.test.", 2024010101)
    await settle(notifier)
    (message,) = secondary.received
    assert message.opcode() == dns.opcode.NOTIFY
    assert message.flags & dns.flags.AA
    assert str(message.question[0].name) == "example.test."
    assert message.question[0].rdtype == dns.rdatatype.SOA
    assert notifier.answered == 1
    await notifier.close()


async def test_unanswered_notify_is_retried() -> None:
    secondary = Secondary(drop=2)
    notifier = Notifier((await start(secondary),), options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    assert len(secondary.received) == 3
    assert len({m.id for m in secondary.received}) == 3  # a fresh ID per attempt
    assert notifier.answered == 1
    await notifier.close()


async def test_gives_up_after_the_attempts() -> None:
    secondary = Secondary(rcode=None)
    notifier = Notifier((await start(secondary),), options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    assert len(secondary.received) == FAST.attempts
    assert notifier.answered == 0
    await notifier.close()


async def test_an_error_answer_is_not_retried() -> None:
    secondary = Secondary(rcode=dns.rcode.NOTAUTH)
    notifier = Notifier((await start(secondary),), options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    assert len(secondary.received) == 1
    await notifier.close()


async def test_changes_in_flight_are_folded() -> None:
    secondary = Secondary(drop=1)  # the first NOTIFY stays unanswered for a while
    notifier = Notifier((await start(secondary),), options=FAST)
    for serial in range(1, 21):
        notifier.zone_changed("busy.test.", serial)
        if serial == 1:
            notifier.zone_changed("quiet.test.", 7)
        await asyncio.sleep(0)
    await settle(notifier)
    busy = [m for m in secondary.received if str(m.question[0].name) == "busy.test."]
    quiet = [m for m in secondary.received if str(m.question[0].name) == "quiet.test."]
    assert 1 <= len(quiet) <= 2
    assert len(busy) <= 3  # twenty changes, not twenty NOTIFYs
    await notifier.close()


async def test_every_target_is_notified() -> None:
    first, second = Secondary(), Secondary()
    notifier = Notifier((await start(first), await start(second)), options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    assert len(first.received) == len(second.received) == 1
    assert notifier.answered == 2
    await notifier.close()


async def test_signed_notify() -> None:
    secondary = Secondary(keyring=KEYRING)  # from_wire verifies our TSIG
    notifier = Notifier((await start(secondary),), key=KEY, options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    (message,) = secondary.received
    assert message.had_tsig and message.keyname == KEY.name
    assert notifier.answered == 1
    await notifier.close()


async def test_unsigned_answer_to_a_signed_notify_is_ignored() -> None:
    secondary = Secondary(keyring=KEYRING, sign_replies=False)
    notifier = Notifier((await start(secondary),), key=KEY, options=FAST)
    notifier.zone_changed("example.test.", 1)
    await settle(notifier)
    assert len(secondary.received) == FAST.attempts
    assert notifier.answered == 0
    await notifier.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(WAIT_S)
    yield sock
    sock.close()


def test_an_edit_in_the_store_notifies_the_secondary(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    config = TransferConfig.from_texts(notify=[f"127.0.0.1:{port}"])
    with shared_database(tmp_path) as url:
        import_zone(url, "notify.test.", "@ SOA ns1 hostmaster 1 2 3 4 5\n@ NS ns1\nns1 A 192.0.2.1\n")
        with run_primary(url, config, FAST) as primary:
            serial = edit(url, "notify.test.", put("notify.test.", "www", "A", "192.0.2.8")).serial
            data, peer = listener.recvfrom(512)
            message = dns.message.from_wire(data)
            assert message.opcode() == dns.opcode.NOTIFY
            assert str(message.question[0].name) == "notify.test."
            # Sent once the new serial is served, so the secondary finds it at once.
            assert primary.serial("notify.test.") == serial
            listener.sendto(dns.message.make_response(message).to_wire(), peer)
