"""Inbound SPF, DKIM, ARC and DMARC checks, recorded in Authentication-Results.

SPF through pyspf, DKIM and ARC (only when the message has an ARC set)
through dkimpy, DMARC evaluated here (policy record lookup and relaxed
alignment of the passing SPF or DKIM domain with the From: domain). The
organisational domain for DMARC is approximated by the last two labels
(no public suffix list offline).

All of it runs on the event loop, no thread: every DNS answer comes from
the process's cache (dnscache.py) or an asynchronous lookup on the
configured resolver. The libraries are synchronous, so they are run
against the answers at hand: a name they ask for that is not there yet
stops the run (`_Missing`), the lookup is awaited, and the run starts
again (pyspf and dkimpy take well under a millisecond for a run; a cold
SPF include chain of depth n costs n + 1 runs). The names known in advance
(the sender's SPF record, each signature's key, `_dmarc.`) are looked up
together before the first run. SPF, the keys and DMARC each have
`timeout_s`; a part that runs out gives its own temperror. dkimpy hashes
the body in Python: a message over INLINE_MAX_BYTES is verified in a
thread, so that it does not hold up the other sessions.

RSA verification goes to OpenSSL (dkimverify.py): 0.5 ms down to 0.03 ms
a signature.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import dkim
import dkim.util
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.PTR
import dns.rdtypes.txtbase
import spf

from mx_forwarder import dkimverify
from mx_forwarder.dnscache import Answer, DnsCache, Key, Status, a_labels, key
from mx_forwarder.message import header_fields, header_from_domain

log = logging.getLogger(__name__)

INLINE_MAX_BYTES = 64 * 1024  # bigger messages: DKIM/ARC hashing in a thread
MAX_SIGNATURES = 5  # DKIM-Signature fields checked per message
MAX_LOOKUPS = 24  # per part and message (SPF allows 10 + 2 void; an ARC chain 2 per set)
TEMPERROR = "temperror"


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
    """A property value: as it is when plain, else a quoted string; ASCII only
    (a domain in U-labels as A-labels), or our ARC seal cannot parse it back."""
    if _TOKEN.fullmatch(text):
        return text
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            text = text.encode("ascii", "replace").decode("ascii")
        if _TOKEN.fullmatch(text):
            return text
    clean = "".join(c for c in text if c.isprintable())[:255]
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _org(domain: str) -> str:
    return ".".join(domain.split(".")[-2:])


def _aligned(a: str, b: str) -> bool:
    return bool(a) and bool(b) and _org(a.lower()) == _org(b.lower())


# --- the synchronous libraries against the answers at hand -----------------

class _Missing(Exception):
    """Not an error: a lookup to make, then the run starts again."""

    def __init__(self, k: Key) -> None:
        super().__init__(k)
        self.key = k


class _NoKey(Exception):
    """No key record at the name: permerror (RFC 6376 6.1.2: PERMFAIL, no key)."""


class _KeyUnavailable(Exception):
    """The key lookup failed: temperror."""


class _Answers:
    """What one check has looked up, in front of the process's cache."""

    def __init__(self, cache: DnsCache) -> None:
        self.cache = cache
        self.got: dict[Key, Answer] = {}
        self.missed: list[Key] = []  # asked for in this run, not at hand
        self.lookups = 0
        self.local_only = False  # in a thread: never touch the shared cache

    def get(self, k: Key) -> Answer:
        """The answer, or _Missing (never I/O: this runs inside the libraries).
        A miss is also noted in `missed`, in case a library swallows the exception."""
        answer = self.got.get(k)
        if answer is None and not self.local_only:
            answer = self.cache.cached(k)
        if answer is None:
            self.missed.append(k)
            raise _Missing(k)
        return answer

    async def fetch(self, keys: Iterable[Key]) -> None:
        todo = []
        for k in dict.fromkeys(keys):
            if k in self.got:
                continue
            answer = None if self.local_only else self.cache.cached(k)
            if answer is None:
                todo.append(k)
            else:  # no task, no turn of the loop for what the cache has
                self.got[k] = answer
        if not todo:
            return
        self.lookups += len(todo)
        answers = await asyncio.gather(*(self.cache.lookup(name, rdtype.name)
                                         for name, rdtype in todo))
        self.got.update(zip(todo, answers, strict=True))

    def txt(self, name: bytes | str, timeout: float = 5) -> bytes:
        """dkimpy's dnsfunc: the first TXT record at `name`, its strings joined."""
        qname = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
        answer = self.get(key(qname, "TXT"))
        if answer.status is Status.FAILED:
            raise _KeyUnavailable(qname)
        if not answer.records:
            raise _NoKey(qname)
        return _joined(answer.records[0])


_T = TypeVar("_T")


async def _run(answers: _Answers, first: Iterable[Key], step: Callable[[], _T], *,
               in_thread: bool = False,
               fetch: Callable[[Iterable[Key]], Awaitable[None]] | None = None) -> _T:
    """`step()` until it has had every answer it asked for (looking each miss up
    with `fetch`, by default `answers.fetch`); in a thread for a big message."""
    fetch = fetch or answers.fetch
    await fetch(first)
    while True:
        answers.missed.clear()
        try:
            result = await asyncio.to_thread(step) if in_thread else step()
            if not answers.missed:
                return result
        except _Missing:
            pass
        if answers.lookups >= MAX_LOOKUPS:
            raise _Missing(answers.missed[0])
        await fetch(answers.missed)


class _OutOfTime(Exception):
    """A round of lookups did not end within the check's time budget."""


def _joined(rdata: object) -> bytes:
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return b"".join(rdata.strings)
    return b""


_SPF_ANSWERS: contextvars.ContextVar[_Answers] = contextvars.ContextVar("spf_answers")


def _spf_lookup(name: str, qtype: str, *_: object, **__: object) -> list[object]:
    """pyspf's DNSLookup, answered from the current check's answers."""
    answer = _SPF_ANSWERS.get().get(key(name, qtype))
    if answer.status is Status.FAILED:
        raise spf.TempError(f"DNS lookup of {name} {qtype} failed")
    result: list[object] = []
    for rdata in answer.records:
        if qtype in ("A", "AAAA"):
            result.append(((name, qtype), rdata.address))  # type: ignore[attr-defined]
        elif isinstance(rdata, dns.rdtypes.ANY.MX.MX):
            result.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif isinstance(rdata, dns.rdtypes.ANY.PTR.PTR):
            result.append(((name, qtype), rdata.target.to_text(True)))
        elif isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
            result.append(((name, qtype), rdata.strings))
    return result


def _signature_keys(fields: list[tuple[str, bytes]], names: tuple[str, ...],
                    limit: int) -> list[Key]:
    """The key names (s=._domainkey.d=) of the signatures in `fields` named `names`."""
    keys: list[Key] = []
    for name, value in fields:
        if name not in names:
            continue
        try:
            tags = dkim.util.parse_tag_value(value)
            keys.append(key(f"{tags[b's'].decode()}._domainkey.{tags[b'd'].decode()}", "TXT"))
        except (dkim.util.InvalidTagValueList, KeyError, UnicodeDecodeError):
            continue  # dkimpy reports it (permerror)
        if len(keys) >= limit:
            break
    return keys


class DnsAuthChecker:
    """SPF/DKIM/ARC/DMARC against one resolver (or the system's), answers cached."""

    def __init__(self, authserv_id: str, resolver: tuple[str, int] | None,
                 timeout_s: float = 3.0, *, cache: DnsCache | None = None) -> None:
        self._authserv_id = authserv_id
        self._timeout_s = timeout_s
        self.cache = cache if cache is not None else DnsCache(resolver, timeout_s)
        # pyspf resolves through a module-level hook: answer it from the current check
        spf.DNSLookup = _spf_lookup
        dkimverify.install()

    async def check(self, *, client_ip: str, helo: str, mail_from: str, data: bytes) -> bytes:
        try:
            async with asyncio.timeout(self._timeout_s * 2):
                results = await self.results(client_ip=client_ip, helo=helo,
                                             mail_from=mail_from, data=data)
        except TimeoutError:
            return (f"Authentication-Results: {self._authserv_id}; spf=temperror; "
                    "dkim=temperror; dmarc=temperror\r\n").encode()
        return results.to_header(self._authserv_id)

    async def results(self, *, client_ip: str, helo: str, mail_from: str,
                      data: bytes) -> AuthResults:
        # every domain in A-labels (RFC 8616): looked up, aligned and reported as such
        local, at, spf_domain = (mail_from or f"postmaster@{helo}").rpartition("@")
        spf_domain = a_labels(spf_domain)
        sender = local + at + spf_domain
        fields = header_fields(data)
        from_domain = header_from_domain(fields)
        from_domain = a_labels(from_domain) if from_domain else None
        signatures = sum(1 for n, _ in fields if n == "dkim-signature")
        has_arc = any(n == "arc-seal" for n, _ in fields)
        spf_result, (dkim_results, arc), policy = await asyncio.gather(
            self._part(self._spf(client_ip, sender, helo, spf_domain), TEMPERROR),
            self._signatures(data, fields, signatures, has_arc),
            self._part(self._dmarc_policy(from_domain), TEMPERROR) if from_domain
            else _none(),
        )
        dmarc = "none"
        if policy == TEMPERROR:
            dmarc = TEMPERROR
        elif policy is not None:
            aligned = (spf_result == "pass" and _aligned(spf_domain, from_domain or "")) or any(
                r == "pass" and _aligned(d, from_domain or "") for r, d in dkim_results
            )
            dmarc = "pass" if aligned else "fail"
        return AuthResults(spf_result, spf_domain, dkim_results, dmarc, from_domain, arc)

    async def _part(self, work: Awaitable[_T], on_timeout: _T) -> _T:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await work
        except TimeoutError:
            return on_timeout

    # --- SPF ---------------------------------------------------------------

    async def _spf(self, client_ip: str, sender: str, helo: str, domain: str) -> str:
        answers = _Answers(self.cache)

        def step() -> str:
            token = _SPF_ANSWERS.set(answers)
            try:
                query = spf.query(i=client_ip, s=sender, h=helo, querytime=0)
                result: str = query.check()[0]
                return result
            finally:
                _SPF_ANSWERS.reset(token)

        first = [key(domain, "TXT")] if domain else []
        try:
            return await _run(answers, first, step)
        except _Missing:
            log.info("spf check of %s: more than %d lookups", domain, MAX_LOOKUPS)
            return TEMPERROR
        except Exception as exc:  # noqa: BLE001  (a library bug must not cost a message)
            log.info("spf check failed: %s", exc)
            return TEMPERROR

    # --- DKIM and ARC ------------------------------------------------------

    async def _signatures(self, data: bytes, fields: list[tuple[str, bytes]], count: int,
                          has_arc: bool) -> tuple[tuple[tuple[str, str], ...], str | None]:
        if not count and not has_arc:
            return (), None
        answers = _Answers(self.cache)
        names = _signature_keys(fields, ("dkim-signature",), MAX_SIGNATURES)
        if has_arc:
            names += _signature_keys(fields, ("arc-seal", "arc-message-signature"), 10)
        try:
            async with asyncio.timeout(self._timeout_s):
                await answers.fetch(names)
        except TimeoutError:
            pass  # what is missing gives temperror below
        inline = len(data) <= INLINE_MAX_BYTES
        signed = [v for n, v in fields if n == "dkim-signature"][:MAX_SIGNATURES]
        results = []
        verifier = dkim.DKIM(data, timeout=int(self._timeout_s) or 1) if signed else None
        for index, sig in enumerate(signed):
            assert verifier is not None
            results.append((await self._dkim_one(answers, verifier, index, inline),
                            a_labels(_tag(sig, b"d"))))
        arc = await self._arc(answers, data, inline) if has_arc else None
        return tuple(results), arc

    async def _dkim_one(self, answers: _Answers, verifier: dkim.DKIM, index: int,
                        inline: bool) -> str:
        def step() -> str:
            try:
                return "pass" if verifier.verify(idx=index, dnsfunc=answers.txt) else "fail"
            except _KeyUnavailable:
                return TEMPERROR
            except dkim.ValidationError as exc:  # the body changed, or a malformed signature
                return "fail" if str(exc).startswith("body hash mismatch") else "permerror"
            except (_NoKey, dkim.DKIMException):
                return "permerror"

        try:
            return await self._verify(answers, step, inline)
        except _Missing:
            return TEMPERROR
        except Exception as exc:  # noqa: BLE001  (a library bug must not cost a message)
            log.info("dkim check failed: %s", exc)
            return TEMPERROR

    async def _arc(self, answers: _Answers, data: bytes, inline: bool) -> str:
        def step() -> str:
            cv, _, reason = dkim.ARC(data, timeout=int(self._timeout_s) or 1).verify(
                dnsfunc=answers.txt)
            arc = cv.decode() if cv in (dkim.CV_Pass, dkim.CV_Fail) else "fail"
            if arc != "pass":
                log.info("arc chain %s: %s", arc, reason)
            return arc

        try:
            return await self._verify(answers, step, inline)
        except Exception as exc:  # noqa: BLE001  (a broken chain is a failed one)
            log.info("arc check failed: %s", exc)
            return "fail"

    async def _verify(self, answers: _Answers, step: Callable[[], str], inline: bool) -> str:
        """`step` with every key it asks for looked up, in a thread for a big message."""
        if inline:
            return await self._part(_run(answers, (), step), TEMPERROR)

        async def fetch_in_time(keys: Iterable[Key]) -> None:
            # The budget is per round of lookups: the thread's own work is not timed.
            try:
                async with asyncio.timeout(self._timeout_s):
                    await answers.fetch(keys)
            except TimeoutError as exc:
                raise _OutOfTime from exc

        answers.local_only = True  # a miss inside the thread: looked up here, then run again
        try:
            return await _run(answers, (), step, in_thread=True, fetch=fetch_in_time)
        except _OutOfTime:
            return TEMPERROR
        finally:
            answers.local_only = False

    # --- DMARC -------------------------------------------------------------

    async def _dmarc_policy(self, domain: str) -> str | None:
        """p= of the DMARC record (RFC 7489 6.6.3), None without one, or temperror."""
        for name in dict.fromkeys((domain, _org(domain))):
            answer = await self.cache.lookup(f"_dmarc.{name}", "TXT")
            if answer.status is Status.FAILED:
                return TEMPERROR
            records = [text for text in map(_joined, answer.records)
                       if text[:8].lower() == b"v=dmarc1"]
            if len(records) > 1:
                return None  # more than one: no policy, no further search
            if records:
                for tag in records[0].decode("ascii", "replace").split(";"):
                    name_, _, value = tag.strip().partition("=")
                    if name_.strip().lower() == "p":
                        return value.strip().lower()
                return "none"
        return None


async def _none() -> None:
    return None


def _tag(signature: bytes, name: bytes) -> str:
    for part in signature.split(b";"):
        key_, _, value = part.strip().partition(b"=")
        if key_.strip() == name:
            return "".join(value.decode("utf-8", "replace").split())
    return ""
