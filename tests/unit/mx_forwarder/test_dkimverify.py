"""OpenSSL's RSA check gives dkimpy's own answers, including on the odd
signatures; a key record is parsed once."""

from __future__ import annotations

import hashlib

import dkim
import dkim.crypto
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mx_forwarder import dkimverify
from mx_forwarder.dkimverify import _PURE_VERIFY, load_pk, rsa_verify


def key_and_public(bits: int = 2048) -> tuple[rsa.RSAPrivateKey, dict[str, int]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = key.public_key().public_numbers()
    return key, {"modulus": numbers.n, "publicExponent": numbers.e}


def sign(key: rsa.RSAPrivateKey, digest: dkim.HashThrough, name: str = "sha256") -> bytes:
    algorithm = hashes.SHA256() if name == "sha256" else hashes.SHA1()
    return key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(algorithm))


@pytest.mark.parametrize("algorithm", [hashlib.sha256, hashlib.sha1])
def test_same_answers_as_dkimpy(algorithm: type) -> None:
    key, public = key_and_public()
    digest = dkim.HashThrough(algorithm(b"header fields"))
    good = sign(key, digest, digest.name)
    other = dkim.HashThrough(algorithm(b"other header fields"))
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    _, stranger = key_and_public()
    cases = [(digest, good, public), (other, good, public), (digest, flipped, public),
             (digest, good, stranger), (digest, b"", public), (digest, good + b"\0", public),
             (digest, b"\0" + good, public)]
    for d, signature, pk in cases:
        assert rsa_verify(d, signature, pk) is _PURE_VERIFY(d, signature, pk), (d, signature)
    assert rsa_verify(digest, good, public) is True


def test_signature_without_its_leading_zero_bytes() -> None:
    """A signer that drops leading zero bytes: dkimpy reads a number, so do we."""
    key, public = key_and_public(1024)
    for n in range(2000):
        digest = dkim.HashThrough(hashlib.sha256(b"%d" % n))
        signature = sign(key, digest)
        if signature[0] == 0:
            break
    else:
        pytest.skip("no signature with a leading zero byte in 2000 tries")
    short = signature.lstrip(b"\0")
    assert _PURE_VERIFY(digest, short, public) is True
    assert rsa_verify(digest, short, public) is True


def test_small_keys_stay_with_dkimpy() -> None:
    """Under 1024 bits dkimpy's own code decides (and raises when the digest does not fit)."""
    small = {"modulus": (1 << 511) + 1, "publicExponent": 3}
    digest = dkim.HashThrough(hashlib.sha256(b"x"))
    with pytest.raises(dkim.crypto.DigestTooLargeError):
        _PURE_VERIFY(digest, b"\1" * 64, {"modulus": (1 << 400) + 1, "publicExponent": 3})
    with pytest.raises(dkim.crypto.DigestTooLargeError):
        rsa_verify(digest, b"\1" * 64, {"modulus": (1 << 400) + 1, "publicExponent": 3})
    assert rsa_verify(digest, b"\1" * 64, small) is _PURE_VERIFY(digest, b"\1" * 64, small)


def test_key_record_parsed_once() -> None:
    record = b"v=DKIM1; k=rsa; p=" + _b64_public()
    asked: list[bytes] = []

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return record

    first = load_pk(b"s._domainkey.a.test.", dnsfunc)
    assert load_pk(b"s._domainkey.a.test.", dnsfunc) is first  # the same parse
    assert asked == [b"s._domainkey.a.test."] * 2  # the record is still read every time
    assert first[0]["publicExponent"] == 65537 and first[2] == b"rsa"
    with pytest.raises(dkim.KeyFormatError):
        load_pk(b"bad.", lambda name, timeout=5: b"v=DKIM1; p=AAAA")
    with pytest.raises(dkim.KeyFormatError):
        load_pk(b"none.", lambda name, timeout=5: None)


def test_install_points_dkimpy_here() -> None:
    dkimverify.install()
    assert dkim.RSASSA_PKCS1_v1_5_verify is rsa_verify
    assert dkim.load_pk_from_dns is load_pk


def _b64_public() -> bytes:
    import base64

    from cryptography.hazmat.primitives import serialization

    key, _ = key_and_public()
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der)
