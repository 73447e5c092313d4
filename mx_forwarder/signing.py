"""The forwarder's own signatures (optional): a DKIM-Signature for its
signing domain and an ARC set (RFC 8617) that carries our
Authentication-Results on as ARC-Authentication-Results, so that the
destination can trust what we saw when the original DKIM or SPF no longer
pass after forwarding.

Both only add header fields at the top: the body and the header fields
received go on byte for byte. dkimpy does the canonicalization and the
header choice; the RSA operation itself goes to `cryptography` (OpenSSL),
17 ms down to 0.6 ms a signature (dkimpy computes it in Python), and our
key is parsed once, not at every signature. PKCS#1 v1.5 signatures are
deterministic, so the bytes are dkimpy's own (tests/unit/mx_forwarder).

What is signed is a view of the message without the Authentication-Results
fields it arrived with (none of them is ever covered by a signature of
ours, RFC 8617 4.1.2), so that a sender cannot slip its own claims under
our authserv-id into the ARC-Authentication-Results; only the one we
prepended is sealed.

`watch_published_key` checks, from the start and then every hour, that the
key record at <selector>._domainkey.<domain> holds our public key: when it
is missing or holds another key, every signature of ours fails at the
receivers, so it says so (a warning with the record to publish, and the
gauge zonehost_mx_signing_key_published).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dkim
import dkim.crypto
import dkim.util
import dns.rdtypes.txtbase
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mx_forwarder import metrics
from mx_forwarder.dnscache import DnsCache, Status
from mx_forwarder.errors import ForwarderError
from mx_forwarder.message import CRLF, header_block

log = logging.getLogger(__name__)

AUTH_RESULTS = b"authentication-results"


class SigningKeyError(ForwarderError):
    """The signing key cannot be read or is not an RSA private key in PEM."""


@dataclass(frozen=True, slots=True)
class SigningSettings:
    domain: str
    selector: str
    key_pem: bytes
    authserv_id: str  # our Authentication-Results, sealed by ARC
    dkim: bool = True
    arc: bool = True


# --- RSA through OpenSSL for the keys we loaded ----------------------------

_KEYS: dict[int, rsa.RSAPrivateKey] = {}  # modulus -> key
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha1": hashes.SHA1,
}
_PURE_SIGN: Callable[[Any, dict[str, int]], bytes] = dkim.crypto.RSASSA_PKCS1_v1_5_sign
_PARSE_PEM: Callable[[bytes], dict[str, int]] = dkim.crypto.parse_pem_private_key
_PARSED: dict[bytes, dict[str, int]] = {}  # PEM -> dkimpy's key (parsed in Python: 0.4 ms)


def _rsa_sign(digest: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's RSASSA_PKCS1_v1_5_sign(hash, key), through OpenSSL when it is one of ours."""
    key = _KEYS.get(private_key["modulus"])
    algorithm = _HASHES.get(str(digest.name).lower())
    if key is None or algorithm is None:
        return _PURE_SIGN(digest, private_key)
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm()))


def _parse_pem(pem: bytes) -> dict[str, int]:
    """dkimpy's parse_pem_private_key, once per key of ours (it parses at every signature)."""
    parsed = _PARSED.get(pem)
    return dict(parsed) if parsed is not None else _PARSE_PEM(pem)


def load_key(pem: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"signing key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningKeyError("signing key: not an RSA key (ARC signs with rsa-sha256)")
    _KEYS[key.private_numbers().public_numbers.n] = key
    try:
        _PARSED[pem] = _PARSE_PEM(pem)
    except dkim.crypto.UnparsableKeyError as exc:
        raise SigningKeyError(f"signing key: {exc}") from exc
    # the names DKIM.sign(), ARC.sign() and gen_header() call
    dkim.RSASSA_PKCS1_v1_5_sign = _rsa_sign
    dkim.parse_pem_private_key = _parse_pem
    return key


# --- the message as we sign it ---------------------------------------------

def signing_view(data: bytes, keep_first: bool) -> bytes:
    """`data` without its Authentication-Results fields (but the first one when
    `keep_first`: ours, prepended); the body untouched."""
    head = header_block(data)
    if AUTH_RESULTS not in head.lower() or not head.endswith(CRLF):
        return data
    fields: list[bytes] = []
    for line in head.split(CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += CRLF + line
        else:
            fields.append(line)
    kept = [f for i, f in enumerate(fields)
            if (keep_first and i == 0)
            or f.partition(b":")[0].strip().lower() != AUTH_RESULTS]
    return b"".join(f + CRLF for f in kept) + data[len(head):]


class Signer:
    def __init__(self, settings: SigningSettings) -> None:
        self.settings = settings
        numbers = load_key(settings.key_pem).public_key().public_numbers()
        self.public_key = (numbers.n, numbers.e)
        self._domain = settings.domain.lower().rstrip(".").encode()
        self._selector = settings.selector.encode()
        self._srv_id = settings.authserv_id.encode()

    def sign(self, prefix: bytes, data: bytes) -> bytes:
        """Header fields to put on top of `prefix + data` (b"" when nothing could be signed).
        Slow for large messages (dkimpy canonicalizes the body in Python): run in a thread.

        `prefix` is what we prepend (our Authentication-Results first, when
        there is one); `data` is the message as received."""
        s = self.settings
        ours = prefix.lower().startswith(AUTH_RESULTS + b":")
        view = signing_view(prefix + data, keep_first=ours)
        added = b""
        try:
            if s.dkim:
                signer = dkim.DKIM(view)
                added = signer.sign(self._selector, self._domain, s.key_pem,
                                    canonicalize=(b"relaxed", b"relaxed"),
                                    include_headers=signer.default_sign_headers())
            if s.arc and ours:
                sealed = dkim.arc_sign(added + view, self._selector, self._domain, s.key_pem,
                                       self._srv_id)
                if not sealed:
                    log.warning("no ARC set: our Authentication-Results did not parse")
                added = b"".join(sealed) + added
        except dkim.DKIMException as exc:  # what was signed before it stays
            metrics.SIGNING_FAILED.inc()
            log.warning("message not signed (or not sealed): %s", exc)
        return added


# --- is our public key published? -------------------------------------------

KEY_RECHECK_S = 3600.0
KEY_RETRY_S = 60.0  # after a failed lookup


class KeyState(enum.Enum):
    PUBLISHED = "published"
    MISSING = "missing"  # no record, or p= empty (revoked)
    DIFFERENT = "different"  # a record, not with our key
    UNKNOWN = "unknown"  # the lookup failed


def key_name(settings: SigningSettings) -> str:
    return f"{settings.selector}._domainkey.{settings.domain.rstrip('.')}"


def key_record(public_key: tuple[int, int]) -> str:
    """The TXT rdata (master-file strings of at most 255 characters) that publishes
    `public_key` (modulus, exponent)."""
    der = rsa.RSAPublicNumbers(public_key[1], public_key[0]).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    text = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return " ".join(f'"{text[i:i + 255]}"' for i in range(0, len(text), 255))


_UNREADABLE = (0, 0)  # a key record we cannot read (another algorithm, bad base64): not ours


def _record_key(text: bytes) -> tuple[int, int] | None:
    """(modulus, exponent) of a DKIM key record; None when p= is absent or empty (revoked)."""
    try:
        p = b"".join(dkim.util.parse_tag_value(text).get(b"p", b"").split())
    except dkim.util.InvalidTagValueList:
        return _UNREADABLE
    if not p:
        return None
    try:
        parsed = dkim.crypto.parse_public_key(base64.b64decode(p, validate=True))
        return int(parsed["modulus"]), int(parsed["publicExponent"])
    except (dkim.crypto.UnparsableKeyError, binascii.Error, ValueError, KeyError, IndexError):
        return _UNREADABLE


async def published_key(cache: DnsCache, signer: Signer) -> KeyState:
    """Does the key record of our selector hold our public key (every record there, if several)?"""
    answer = await cache.lookup(key_name(signer.settings), "TXT")
    if answer.status is Status.FAILED:
        return KeyState.UNKNOWN
    keys = [_record_key(b"".join(r.strings)) for r in answer.records
            if isinstance(r, dns.rdtypes.txtbase.TXTBase)]
    if not any(keys):
        return KeyState.MISSING
    return KeyState.PUBLISHED if all(k == signer.public_key for k in keys) else KeyState.DIFFERENT


async def watch_published_key(cache: DnsCache, signer: Signer, key_file: str) -> None:
    """`published_key` now and every KEY_RECHECK_S, into the gauge; a warning when it
    goes wrong (the lookup failing is retried after KEY_RETRY_S, the gauge kept)."""
    name = key_name(signer.settings)
    last = None
    while True:
        state = await published_key(cache, signer)
        if state is not last:
            if state is KeyState.PUBLISHED:
                log.info("the DKIM key at %s is the public key of %s", name, key_file)
            elif state is KeyState.UNKNOWN:
                log.warning("cannot look up the DKIM key at %s (trying again in %.0f s)",
                            name, KEY_RETRY_S)
            else:
                log.warning("%s at %s: receivers will fail every signature of ours; "
                            "publish the public key of %s there: %s IN TXT %s",
                            "no DKIM key" if state is KeyState.MISSING else "another DKIM key",
                            name, key_file, name, key_record(signer.public_key))
        if state is not KeyState.UNKNOWN:
            metrics.SIGNING_KEY_PUBLISHED.labels(  # the series appears with the first answer
                signer.settings.domain.rstrip("."), signer.settings.selector,
            ).set(1 if state is KeyState.PUBLISHED else 0)
        last = state
        await asyncio.sleep(KEY_RETRY_S if state is KeyState.UNKNOWN else KEY_RECHECK_S)
