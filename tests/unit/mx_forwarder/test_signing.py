"""Signing pieces: OpenSSL's RSA gives dkimpy's own bytes; the signing view
drops received Authentication-Results fields and nothing else."""

from __future__ import annotations

import hashlib

import dkim
import dkim.crypto
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mx_forwarder.signing import _PURE_SIGN, Signer, SigningSettings, _rsa_sign, signing_view


def pem_key() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_openssl_signature_is_dkimpys() -> None:
    pem = pem_key()
    Signer(SigningSettings("fwd.test", "sel", pem, "mx.test"))
    assert dkim.RSASSA_PKCS1_v1_5_sign is _rsa_sign
    parsed = dkim.crypto.parse_pem_private_key(pem)
    for algorithm in (hashlib.sha256, hashlib.sha1):
        fast = _rsa_sign(dkim.HashThrough(algorithm(b"headers")), parsed)
        pure = _PURE_SIGN(dkim.HashThrough(algorithm(b"headers")), parsed)
        assert fast == pure
    other = dkim.crypto.parse_pem_private_key(pem_key())  # not loaded: dkimpy's own code
    digest = dkim.HashThrough(hashlib.sha256(b"x"))
    assert _rsa_sign(digest, other) == _PURE_SIGN(dkim.HashThrough(hashlib.sha256(b"x")), other)


def test_signing_view() -> None:
    ours = b"Authentication-Results: mx.test;\r\n\tspf=pass smtp.mailfrom=a.test\r\n"
    data = (b"Received: x\r\nauthentication-results : mx.test; arc=pass;\r\n"
            b"  spf=pass\r\nFrom: a@a.test\r\nAuthentication-Results: other; dkim=pass\r\n"
            b"\r\nAuthentication-Results: in the body stays\r\n")
    view = signing_view(ours + data, keep_first=True)
    assert view == ours + (b"Received: x\r\nFrom: a@a.test\r\n"
                           b"\r\nAuthentication-Results: in the body stays\r\n")
    assert signing_view(ours + data, keep_first=False).startswith(b"Received: x\r\nFrom:")
    plain = b"From: a@a.test\r\n\r\nbody\r\n"
    assert signing_view(plain, keep_first=False) is plain


def test_unsignable_message_goes_on_unsigned() -> None:
    from prometheus_client import REGISTRY

    signer = Signer(SigningSettings("fwd.test", "sel", pem_key(), "mx.test"))
    before = REGISTRY.get_sample_value("zonehost_mx_signing_failed_total") or 0.0
    ours = b"Authentication-Results: mx.test; spf=none smtp.mailfrom=a.test\r\n"
    assert signer.sign(ours, b"Subject: no From field\r\n\r\nbody\r\n") == b""
    assert REGISTRY.get_sample_value("zonehost_mx_signing_failed_total") == before + 1
    sealed = signer.sign(ours, b"From: a@a.test\r\n\r\nbody\r\n")
    assert sealed.startswith(b"ARC-Seal: i=1; cv=none;") and b"\r\nDKIM-Signature: " in sealed
