"""Malformed DNS messages for fuzzing, made from valid queries by a seeded random source.

Each mutation is a small named function, so a failure can say which kind of packet was
being sent. Nothing here touches a socket.
"""

from __future__ import annotations

import enum
import random
import struct
from collections.abc import Callable, Sequence

HEADER = struct.Struct("!HHHHHH")
OPT_TYPE = 41


class Kind(enum.Enum):
    BIT_FLIP = "bit-flip"
    TRUNCATE = "truncate"
    RANDOM = "random-bytes"
    COUNTS = "counts"
    POINTER_LOOP = "pointer-loop"
    BAD_OPT = "bad-opt"
    BAD_NAME = "bad-name"
    HEADER_BITS = "header-bits"
    SPLICE = "splice"


def _bit_flip(rng: random.Random, wire: bytes) -> bytes:
    data = bytearray(wire)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def _truncate(rng: random.Random, wire: bytes) -> bytes:
    return wire[: rng.randrange(len(wire))]


def _random(rng: random.Random, wire: bytes) -> bytes:
    size = rng.choice([0, 1, 2, 11, 12, 13, 17, rng.randrange(512), rng.randrange(1500)])
    return rng.randbytes(size)


def _counts(rng: random.Random, wire: bytes) -> bytes:
    qid, flags, *counts = HEADER.unpack_from(wire)
    for i in range(4):
        if rng.random() < 0.6:
            counts[i] = rng.choice([0, 1, 2, 3, 0x7FFF, 0xFFFF, rng.randrange(65536)])
    return HEADER.pack(qid, flags, *counts) + wire[HEADER.size :]


def _header(wire: bytes, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    qid, flags = struct.unpack_from("!HH", wire)
    return HEADER.pack(qid, flags, qd, an, ns, ar)


def _pointer_loop(rng: random.Random, wire: bytes) -> bytes:
    tail = b"\x00\x01\x00\x01"  # A IN
    name = rng.choice(
        [
            b"\xc0\x0c",  # points at itself
            b"\x03www\xc0\x0c",  # a label, then back to its own start
            b"\xc0\x0e\xc0\x0c",  # two pointers pointing at each other
            b"\x01a\xc0\x0e",  # into the middle of itself
            b"\xc0\xff",  # past the end
            b"\xc0\x00",  # into the header
            b"\x03www\xc0",  # a pointer cut in half
            b"\xff\xff",  # pointer past any message
        ]
    )
    body = name + tail
    if rng.random() < 0.3:  # the loop in an answer record instead of the question
        question = wire[HEADER.size : HEADER.size + _question_len(wire)]
        rr = b"\xc0\x0c" if rng.random() < 0.5 else b"\x01x\xc0\x1d"
        rr += struct.pack("!HHIH", 5, 1, 0, 2) + b"\xc0\x0c"  # CNAME back to the question
        return _header(wire, an=1) + question + rr
    return _header(wire) + body


def _question_len(wire: bytes) -> int:
    offset = HEADER.size
    while offset < len(wire) and wire[offset] != 0 and wire[offset] < 64:
        offset += wire[offset] + 1
    return offset - HEADER.size + 5


def _bad_opt(rng: random.Random, wire: bytes) -> bytes:
    question = wire[HEADER.size : HEADER.size + _question_len(wire)]
    payload = rng.choice([0, 1, 511, 512, 1232, 4096, 65535])
    choice = rng.randrange(7)
    if choice == 0:  # RDLENGTH past the end
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, rng.randint(1, 65535))
        opt += rng.randbytes(rng.randrange(8))
    elif choice == 1:  # an option longer than the RDATA
        option = struct.pack("!HH", rng.randrange(65536), rng.randint(5, 65535)) + b"abcd"
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, len(option)) + option
    elif choice == 2:  # oversized: a thousand small options
        options = b"".join(
            struct.pack("!HH", rng.randrange(65536), 0) for _ in range(rng.randint(300, 1000))
        )
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, len(options)) + options
    elif choice == 3:  # two OPT records (RFC 6891: FORMERR)
        one = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, 0)
        return _header(wire, ar=2) + question + one + one
    elif choice == 4:  # OPT not owned by the root
        opt = b"\x03www\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, 0)
    elif choice == 5:  # OPT in the answer section
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, 0, 0)
        return _header(wire, an=1) + question + opt
    else:  # random version, flags and a truncated option header
        ttl = rng.randrange(1 << 32)
        opt = b"\x00" + struct.pack("!HHIH", OPT_TYPE, payload, ttl, 3) + b"\x00\x0a\x00"
    return _header(wire, ar=1) + question + opt


def _bad_name(rng: random.Random, wire: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # a label of 64 octets (0x40 is a reserved label type)
        name = b"\x40" + b"a" * 64 + b"\x00"
    elif choice == 1:  # more than 255 octets of one-letter labels
        name = b"\x01a" * rng.randint(128, 200) + b"\x00"
    elif choice == 2:  # extended label types 0x40 and 0x80
        name = bytes([rng.choice([0x41, 0x80, 0xBF])]) + b"abc\x00"
    elif choice == 3:  # a name that never ends
        name = b"\x3fabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk" * 3
        return _header(wire) + name
    elif choice == 4:  # four 63-octet labels: 257 octets
        name = (b"\x3f" + b"x" * 63) * 4 + b"\x00"
    else:  # label bytes that are not letters, and uppercase
        name = b"\x05\x00\xff.\x80Z\x03WWW\x00"
    return _header(wire) + name + b"\x00\x01\x00\x01"


def _header_bits(rng: random.Random, wire: bytes) -> bytes:
    qid, flags, *counts = HEADER.unpack_from(wire)
    flags = rng.randrange(65536) & ~0x8000  # any opcode, rcode, Z, AA, TC... but still a query
    return HEADER.pack(qid, flags, *counts) + wire[HEADER.size :]


def _splice(rng: random.Random, wire: bytes) -> bytes:
    if rng.random() < 0.5:
        return wire + rng.randbytes(rng.randint(1, 64))
    return wire + wire


MUTATORS: dict[Kind, Callable[[random.Random, bytes], bytes]] = {
    Kind.BIT_FLIP: _bit_flip,
    Kind.TRUNCATE: _truncate,
    Kind.RANDOM: _random,
    Kind.COUNTS: _counts,
    Kind.POINTER_LOOP: _pointer_loop,
    Kind.BAD_OPT: _bad_opt,
    Kind.BAD_NAME: _bad_name,
    Kind.HEADER_BITS: _header_bits,
    Kind.SPLICE: _splice,
}


def mutations(rng: random.Random, seeds: Sequence[bytes], count: int) -> list[tuple[Kind, bytes]]:
    """`count` packets, the kinds in turn, each from a random valid query (QR always clear)."""
    kinds = list(Kind)
    packets = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        packet = MUTATORS[kind](rng, rng.choice(seeds))
        if len(packet) >= 3:
            # A reply must never be answered; those are sent and checked on their own.
            packet = packet[:2] + bytes([packet[2] & 0x7F]) + packet[3:]
        packets.append((kind, packet))
    return packets


def tcp_streams(rng: random.Random, seeds: Sequence[bytes], count: int) -> list[bytes]:
    """Byte streams for one TCP connection each: bad length prefixes, pipelined mutants."""
    streams = []
    for i in range(count):
        seed = rng.choice(seeds)
        choice = i % 8
        if choice == 0:  # zero length
            stream = b"\x00\x00" + struct.pack("!H", len(seed)) + seed
        elif choice == 1:  # announces 65535, sends a query's worth, then stops
            stream = b"\xff\xff" + seed
        elif choice == 2:  # half a length prefix
            stream = b"\x00"
        elif choice == 3:  # length shorter than the message: the rest misframes the next one
            stream = struct.pack("!H", 12) + seed + struct.pack("!H", len(seed)) + seed
        elif choice == 4:  # length longer than the message
            stream = struct.pack("!H", len(seed) + rng.randint(1, 300)) + seed
        elif choice == 5:  # ten pipelined mutants
            stream = b"".join(struct.pack("!H", len(p)) + p for _, p in mutations(rng, seeds, 10))
        elif choice == 6:  # a valid prefix around random bytes
            junk = rng.randbytes(rng.randrange(1, 600))
            stream = struct.pack("!H", len(junk)) + junk
        else:  # a huge message of zeros
            stream = b"\xff\xff" + bytes(65535)
        streams.append(stream)
    return streams


def as_reply(wire: bytes) -> bytes:
    """The same query with QR=1: a server must never answer it."""
    return wire[:2] + bytes([wire[2] | 0x80]) + wire[3:]
