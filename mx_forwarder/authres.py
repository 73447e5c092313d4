"""Inbound SPF, DKIM, ARC and DMARC checks, recorded in Authentication-Results.

SPF through pyspf, DKIM and ARC (only when the message has an ARC set)
through dkimpy, DMARC evaluated here (policy record
lookup and relaxed alignment of the passing SPF or DKIM domain with the
From: domain). Every lookup goes to the configured resolver, with a time
limit; a lookup that fails gives temperror, never a delay without end.
The organisational domain for DMARC is approximated by the last two labels
(no public suffix list offline).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Protocol

import dkim
import dns.exception
import dns.resolver
import spf

from mx_forwarder.message import header_fields, header_from_domain

log = logging.getLogger(__name__)


class AuthChecker(Protocol):
    async def check(self, *, client_ip: str, helo: str, mail_from: str, data: bytes) -> bytes:
        """The Authentication-Results field to prepend (with CRLF), or b""."""
        ...


@dataclass(frozen=True, slots=True)
class AuthResults:
    spf: str
    spf_domain: str
    dkim: tuple[tuple[str, str], ...]  # (result, d=)
    dmarc: str
    from_domain: str | None
    arc: str | None = None  # chain validation of the ARC set received, if any

    def to_header(self, authserv_id: str) -> bytes:
        """RFC 8601 syntax (our ARC seal parses it again, so no loose values)."""
        parts = [f"spf={self.spf} smtp.mailfrom={_pvalue(self.spf_domain or '<>')}"]
        if self.dkim:
            parts += [f"dkim={r}" + (f" header.d={_pvalue(d)}" if d else "")
                      for r, d in self.dkim]
        else:
            parts.append("dkim=none")
        if self.arc is not None:
            parts.append(f"arc={self.arc}")
        parts.append(f"dmarc={self.dmarc}" +
                     (f" header.from={_pvalue(self.from_domain)}" if self.from_domain else ""))
        return ("Authentication-Results: " + authserv_id + ";\r\n\t" + ";\r\n\t".join(parts)
                + "\r\n").encode()


_TOKEN = re.compile(r"[A-Za-z0-9._@+-]+")


def _pvalue(text: str) -> str:
    """A property value: as it is when plain, else a quoted string."""
    if _TOKEN.fullmatch(text):
        return text
    clean = "".join(c for c in text if c.isprintable())[:255]
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _org(domain: str) -> str:
    return ".".join(domain.split(".")[-2:])


def _aligned(a: str, b: str) -> bool:
    return bool(a) and bool(b) and _org(a.lower()) == _org(b.lower())


class DnsAuthChecker:
    """SPF/DKIM/DMARC against one resolver (or the system's)."""

    def __init__(self, authserv_id: str, resolver: tuple[str, int] | None,
                 timeout_s: float = 3.0) -> None:
        self._authserv_id = authserv_id
        self._timeout_s = timeout_s
        self._resolver = dns.resolver.Resolver(configure=resolver is None)
        if resolver is not None:
            self._resolver.nameservers = [resolver[0]]
            self._resolver.port = resolver[1]
        self._resolver.lifetime = timeout_s
        # pyspf resolves through a module-level hook: point it at our resolver.
        spf.DNSLookup = self._spf_lookup

    def _spf_lookup(self, name: str, qtype: str, *_: object, **__: object) -> list[object]:
        result: list[object] = []
        try:
            answer = self._resolver.resolve(name, qtype, lifetime=self._timeout_s)
        except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
            return result
        except (dns.exception.DNSException, OSError) as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        for rdata in answer:
            if qtype in ("A", "AAAA"):
                result.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                result.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                result.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                result.append(((name, qtype), rdata.strings))
        return result

    def _txt(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = self._resolver.resolve(qname.rstrip("."), "TXT",
                                            lifetime=min(timeout, self._timeout_s))
        except (dns.exception.DNSException, OSError):
            return None
        return b"".join(b"".join(r.strings) for r in answer[:1])

    def _dmarc_policy(self, domain: str) -> str | None:
        for name in dict.fromkeys((domain, _org(domain))):
            record = self._txt(f"_dmarc.{name}")
            if record and record.lower().startswith(b"v=dmarc1"):
                for tag in record.decode("ascii", "replace").split(";"):
                    key, _, value = tag.strip().partition("=")
                    if key.strip().lower() == "p":
                        return value.strip().lower()
                return "none"
        return None

    def _check(self, client_ip: str, helo: str, mail_from: str, data: bytes) -> AuthResults:
        sender = mail_from or f"postmaster@{helo}"
        spf_domain = sender.rpartition("@")[2].lower()
        try:
            spf_result, _ = spf.check2(i=client_ip, s=sender, h=helo, querytime=self._timeout_s)
        except Exception as exc:  # noqa: BLE001  (a library bug must not cost a message)
            log.info("spf check failed: %s", exc)
            spf_result = "temperror"
        fields = header_fields(data)
        signatures = [v for n, v in fields if n == "dkim-signature"]
        dkim_results: list[tuple[str, str]] = []
        if signatures:
            verifier = dkim.DKIM(data, timeout=int(self._timeout_s) or 1)
            for index, sig in enumerate(signatures[:5]):
                d = _tag(sig, b"d")
                try:
                    ok = verifier.verify(idx=index, dnsfunc=self._txt)
                    dkim_results.append(("pass" if ok else "fail", d))
                except dkim.DKIMException:
                    dkim_results.append(("permerror", d))
                except Exception as exc:  # noqa: BLE001  (same)
                    log.info("dkim check failed: %s", exc)
                    dkim_results.append(("temperror", d))
        arc = None
        if any(n == "arc-seal" for n, _ in fields):
            try:
                cv, _, reason = dkim.ARC(data, timeout=int(self._timeout_s) or 1).verify(
                    dnsfunc=self._txt)
                arc = cv.decode() if cv in (dkim.CV_Pass, dkim.CV_Fail) else "fail"
                if arc != "pass":
                    log.info("arc chain %s: %s", arc, reason)
            except Exception as exc:  # noqa: BLE001  (a broken chain is a failed one)
                log.info("arc check failed: %s", exc)
                arc = "fail"
        from_domain = header_from_domain(fields)
        dmarc = "none"
        if from_domain:
            policy = self._dmarc_policy(from_domain)
            if policy is not None:
                aligned = (spf_result == "pass" and _aligned(spf_domain, from_domain)) or any(
                    r == "pass" and _aligned(d, from_domain) for r, d in dkim_results
                )
                dmarc = "pass" if aligned else "fail"
        return AuthResults(spf_result, spf_domain, tuple(dkim_results), dmarc, from_domain, arc)

    async def check(self, *, client_ip: str, helo: str, mail_from: str, data: bytes) -> bytes:
        try:
            results = await asyncio.wait_for(
                asyncio.to_thread(self._check, client_ip, helo, mail_from, data),
                timeout=self._timeout_s * 4,
            )
        except TimeoutError:
            return (f"Authentication-Results: {self._authserv_id}; spf=temperror; "
                    "dkim=temperror; dmarc=temperror\r\n").encode()
        return results.to_header(self._authserv_id)


def _tag(signature: bytes, name: bytes) -> str:
    for part in signature.split(b";"):
        key, _, value = part.strip().partition(b"=")
        if key.strip() == name:
            return "".join(value.decode("ascii", "replace").split())
    return ""
