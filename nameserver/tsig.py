"""TSIG (RFC 8945): the configured keys, checking signed requests, signing replies.

Requests are checked by dnspython (`dns.message.from_wire` with a keyring),
which also parses the rest of the message the transfer code needs. Replies
are signed here on raw wire bytes, because the transfer code writes its
messages itself: `Signer` signs every message of a reply stream, the first
one chained to the request's MAC, each later one to the previous message's
MAC (RFC 8945 section 5.3.1). The same `Signer`, with no request MAC, signs
the NOTIFY messages we send.

Keys are configured as "name:algorithm:base64secret", e.g.
"xfr-key:hmac-sha256:K2tf3TRjvQkVCmJF3/Z9vA==".
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.tsig

TSIG_TYPE = 250
CLASS_ANY = 255
DEFAULT_FUDGE_S = 300

# RFC 8945 section 6; MD5 and SHA-1 only for old peers.
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-md5": dns.name.from_text("hmac-md5.sig-alg.reg.int."),
    "hmac-sha1": dns.name.from_text("hmac-sha1."),
    "hmac-sha224": dns.name.from_text("hmac-sha224."),
    "hmac-sha256": dns.name.from_text("hmac-sha256."),
    "hmac-sha384": dns.name.from_text("hmac-sha384."),
    "hmac-sha512": dns.name.from_text("hmac-sha512."),
}
_HASHES: dict[dns.name.Name, str] = {
    ALGORITHMS["hmac-md5"]: "md5",
    ALGORITHMS["hmac-sha1"]: "sha1",
    ALGORITHMS["hmac-sha224"]: "sha224",
    ALGORITHMS["hmac-sha256"]: "sha256",
    ALGORITHMS["hmac-sha384"]: "sha384",
    ALGORITHMS["hmac-sha512"]: "sha512",
}


class TsigError(Exception):
    """Base class of TSIG errors."""


class InvalidKey(TsigError):
    """A configured TSIG key is malformed."""


class TsigRcode(enum.IntEnum):
    """The TSIG ERROR field (RFC 8945 section 3)."""

    NOERROR = 0
    BADSIG = 16
    BADKEY = 17
    BADTIME = 18


@dataclass(frozen=True, slots=True)
class TsigKey:
    name: dns.name.Name
    algorithm: dns.name.Name
    secret: bytes = field(repr=False)  # never in logs

    @classmethod
    def from_text(cls, text: str) -> TsigKey:
        """Parse "name:algorithm:base64secret"."""
        parts = text.strip().split(":")
        if len(parts) != 3:
            raise InvalidKey("a TSIG key is name:algorithm:base64secret")
        name_text, algorithm_text, secret_text = parts
        try:
            name = dns.name.from_text(name_text)
        except dns.exception.DNSException as exc:
            raise InvalidKey(f"TSIG key name {name_text!r}: {exc}") from exc
        algorithm = ALGORITHMS.get(algorithm_text.lower().rstrip("."))
        if algorithm is None:
            known = ", ".join(ALGORITHMS)
            raise InvalidKey(f"TSIG key {name_text}: algorithm must be one of {known}")
        try:
            secret = base64.b64decode(secret_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKey(f"TSIG key {name_text}: the secret is not base64") from exc
        if not secret:
            raise InvalidKey(f"TSIG key {name_text}: empty secret")
        return cls(name, algorithm, secret)

    def to_dnspython(self) -> dns.tsig.Key:
        return dns.tsig.Key(self.name, self.secret, self.algorithm)


class Keyring:
    """The configured keys, by name."""

    def __init__(self, keys: Iterable[TsigKey] = ()) -> None:
        self._keys = {k.name: k for k in keys}
        self._dnspython = {k.name: k.to_dnspython() for k in self._keys.values()}

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Keyring:
        keys = [TsigKey.from_text(t) for t in texts if t.strip()]
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise InvalidKey("two TSIG keys have the same name")
        return cls(keys)

    def get(self, name: dns.name.Name) -> TsigKey | None:
        return self._keys.get(name)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def dnspython(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return self._dnspython


class Verdict(enum.Enum):
    UNSIGNED = "unsigned"
    VALID = "valid"
    BADKEY = "badkey"  # unknown key name, or an algorithm other than the key's
    BADSIG = "badsig"
    BADTIME = "badtime"  # good signature, clock skew beyond the fudge
    MALFORMED = "malformed"  # not a parsable DNS message at all


@dataclass(frozen=True, slots=True)
class RequestTsig:
    """The TSIG of a request, as needed to answer it."""

    key_name: dns.name.Name
    algorithm: dns.name.Name
    time_signed: int
    fudge: int
    mac: bytes
    original_id: int


@dataclass(frozen=True, slots=True)
class CheckedRequest:
    verdict: Verdict
    message: dns.message.Message | None  # parsed, whatever the verdict (unless MALFORMED)
    tsig: RequestTsig | None  # present when the request was signed
    key: TsigKey | None  # the key that verified it (VALID and BADTIME)


def _request_tsig(message: dns.message.Message) -> RequestTsig | None:
    if message.tsig is None or message.keyname is None:
        return None
    rdata = message.tsig[0]
    assert isinstance(rdata, dns.rdtypes.ANY.TSIG.TSIG)
    return RequestTsig(
        key_name=message.keyname,
        algorithm=rdata.algorithm,
        time_signed=int(rdata.time_signed),
        fudge=int(rdata.fudge),
        mac=bytes(rdata.mac),
        original_id=int(rdata.original_id),
    )


def check_request(wire: bytes, keyring: Keyring) -> CheckedRequest:
    """Parse a request and verify its TSIG, if it has one, against `keyring`."""
    try:
        unchecked = dns.message.from_wire(wire, keyring=False, ignore_trailing=True)
    except Exception:  # noqa: BLE001  (any bytes from the network: never raise)
        return CheckedRequest(Verdict.MALFORMED, None, None, None)
    tsig = _request_tsig(unchecked)
    if tsig is None:
        return CheckedRequest(Verdict.UNSIGNED, unchecked, None, None)
    key = keyring.get(tsig.key_name)
    if key is None or key.algorithm != tsig.algorithm:
        return CheckedRequest(Verdict.BADKEY, unchecked, tsig, None)
    try:
        checked = dns.message.from_wire(
            wire, keyring={key.name: key.to_dnspython()}, ignore_trailing=True
        )
    except dns.tsig.BadTime:
        return CheckedRequest(Verdict.BADTIME, unchecked, tsig, key)
    except (dns.tsig.BadKey, dns.tsig.BadAlgorithm, dns.message.UnknownTSIGKey):
        return CheckedRequest(Verdict.BADKEY, unchecked, tsig, None)
    except Exception:  # noqa: BLE001
        # BadSignature, and a MAC of the wrong size (FormError) alike.
        return CheckedRequest(Verdict.BADSIG, unchecked, tsig, None)
    return CheckedRequest(Verdict.VALID, checked, tsig, key)


def _u48(value: int) -> bytes:
    return struct.pack("!HI", (value >> 32) & 0xFFFF, value & 0xFFFFFFFF)


def _with_record(wire: bytes, record: bytes) -> bytes:
    """`wire` with one more additional record appended (ARCOUNT + 1)."""
    arcount = struct.unpack_from("!H", wire, 10)[0] + 1
    return wire[:10] + struct.pack("!H", arcount) + wire[12:] + record


def tsig_record(
    key_name: dns.name.Name,
    algorithm: dns.name.Name,
    time_signed: int,
    fudge: int,
    mac: bytes,
    original_id: int,
    error: int,
    other: bytes,
) -> bytes:
    """One TSIG RR in wire form (names uncompressed)."""
    rdata = (
        algorithm.to_digestable()
        + _u48(time_signed)
        + struct.pack("!HH", fudge, len(mac))
        + mac
        + struct.pack("!HHH", original_id, error, len(other))
        + other
    )
    owner = key_name.to_digestable()
    return owner + struct.pack("!HHIH", TSIG_TYPE, CLASS_ANY, 0, len(rdata)) + rdata


class Signer:
    """Signs the messages of one stream (a reply, or a request we send).

    The first message's digest covers the request MAC (for a reply), the
    message and every TSIG variable; each later one covers the previous
    MAC, the message and the timers only (RFC 8945 sections 4.3 and 5.3.1).
    """

    def __init__(
        self,
        key: TsigKey,
        request_mac: bytes = b"",
        *,
        fudge_s: int = DEFAULT_FUDGE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self._hash = _HASHES[key.algorithm]
        self._request_mac = request_mac
        self._prior: bytes | None = None
        self._fudge = fudge_s
        self._clock = clock

    @property
    def last_mac(self) -> bytes | None:
        return self._prior

    @property
    def reserve_bytes(self) -> int:
        """Octets the TSIG RR adds to a message (with 6 octets of other data)."""
        mac = hmac.new(self.key.secret, digestmod=self._hash).digest_size
        names = len(self.key.name.to_digestable()) + len(self.key.algorithm.to_digestable())
        return names + 10 + 16 + mac + 6

    def sign(
        self,
        wire: bytes,
        *,
        error: TsigRcode = TsigRcode.NOERROR,
        other: bytes = b"",
        time_signed: int | None = None,
    ) -> bytes:
        """`wire` (a whole message, ID as sent) with its TSIG appended."""
        now = int(self._clock()) if time_signed is None else time_signed
        original_id = struct.unpack_from("!H", wire, 0)[0]
        digest = hmac.new(self.key.secret, digestmod=self._hash)
        timers = _u48(now) + struct.pack("!H", self._fudge)
        if self._prior is None:
            if self._request_mac:
                digest.update(struct.pack("!H", len(self._request_mac)) + self._request_mac)
            digest.update(wire)
            digest.update(self.key.name.to_digestable() + struct.pack("!HI", CLASS_ANY, 0))
            digest.update(self.key.algorithm.to_digestable() + timers)
            digest.update(struct.pack("!HH", error, len(other)) + other)
        else:
            digest.update(struct.pack("!H", len(self._prior)) + self._prior)
            digest.update(wire)
            digest.update(timers)
        mac = digest.digest()
        self._prior = mac
        record = tsig_record(
            self.key.name, self.key.algorithm, now, self._fudge, mac, original_id, error, other
        )
        return _with_record(wire, record)


def unsigned_error(wire: bytes, request: RequestTsig, error: TsigRcode) -> bytes:
    """`wire` with an unsigned TSIG carrying `error` (BADKEY/BADSIG, RFC 8945 5.3.2)."""
    record = tsig_record(
        request.key_name, request.algorithm, request.time_signed, request.fudge, b"",
        struct.unpack_from("!H", wire, 0)[0], error, b"",
    )
    return _with_record(wire, record)


def badtime_error(wire: bytes, key: TsigKey, request: RequestTsig, now: int) -> bytes:
    """`wire` signed with BADTIME: our clock in Other Data, the request's
    Time Signed kept so the client can see the skew (RFC 8945 5.2.3)."""
    signer = Signer(key, request.mac, fudge_s=request.fudge)
    return signer.sign(
        wire, error=TsigRcode.BADTIME, other=_u48(now), time_signed=request.time_signed
    )
