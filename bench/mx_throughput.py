#!/usr/bin/env python3
"""The mail forwarder benchmark: zonehost (SQLite, and PostgreSQL with --pg)
against Postfix 3.7 as a virtual-alias forwarder, in one run, 2 KiB messages,
every server and sink on loopback.

    python bench/mx_throughput.py [--messages 2000] [--pg postgresql+asyncpg://postgres@127.0.0.1/postgres]

1. Throughput: 20 concurrent senders (smtplib, one connection each, many
   messages per connection) send `--messages` messages to one alias;
   accepted/s is messages over the time until the last 250 (durably queued),
   delivered/s over the time until the sink has them all. The server's CPU
   time over the run (the forwarder process; for Postfix, the master and
   every child, living or reaped) gives CPU ms per message.
2. Latency: a steady `--rate` messages/s (default 100) for `--seconds`;
   submission (the scheduled send time) to arrival at the sink: p50, p99,
   max.
3. SIGKILL under load (zonehost only): 20 senders send without pause; after
   `--kill-after` seconds the forwarder gets SIGKILL; it is restarted and
   every message that had its 250 must reach the sink. `--kills` rounds;
   reports lost (must be 0) and duplicates (at most the deliveries in flight).

zonehost runs as `python -m zonehost mx-forwarder` with its defaults (FULL
fsync on SQLite, alias cache, 20 delivery workers, Authentication-Results
on). The senders' SPF (an include chain: three TXT lookups), DKIM key and
DMARC records come from `zonehost nameserver` on the bench's store (its CPU
is not counted), and every message carries the sender's DKIM signature, so
the checks do real lookups and a real RSA verification. On SQLite the
throughput and latency runs are repeated with Authentication-Results off,
and with mail from a sender whose records all have TTL 0 (every message
looks everything up again: the forwarder's DNS cache cannot help). With
`--sign`, once more with our own DKIM signature and ARC seal on top
(2048-bit RSA key made for the run). Postfix checks no SPF, DKIM or DMARC
in its default configuration; it gets its own config, queue and data
folders in a temporary folder, chroot off, logging to a file there. Every
process is stopped and the folder and databases removed at the end, also
on error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import multiprocessing
import os
import queue as queue_mod
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.dns import procs  # after the path above

SENDERS = 20
ALIAS = "contact@hosted.test"
TARGET = "me@dest.test"
FILLER = (b"y" * 62 + b"\r\n") * 31  # with the header: about 2 KiB
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


SENDER = "sender.test"  # records with TTL 300 (cached)
COLD_SENDER = "cold.test"  # the same records with TTL 0 (looked up for every message)
SIGNED: dict[str, bytes] = {}  # sender domain -> its DKIM-Signature field (BenchDns)


def base_message(domain: str) -> bytes:
    return (f"Subject: bench\r\nFrom: a@{domain}\r\nTo: {ALIAS}\r\n"
            f"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@{domain}>\r\n"
            "\r\n").encode() + FILLER


def message(tag: bytes = b"-", domain: str = SENDER) -> bytes:
    """2 KiB, signed by `domain` (X-Bench is outside the signature)."""
    return SIGNED.get(domain, b"") + b"X-Bench: " + tag + b"\r\n" + base_message(domain)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                if s.recv(100).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answering on port {port}")


# -- the sink ---------------------------------------------------------------


def sink_main(port: int, counter: Any, ready: Any, records: Any, results: Any) -> None:
    """An aiosmtpd sink; counts recipients and, when `records` is set, reports
    (X-Bench tag, arrival time in monotonic ns) of each message; `results`
    gets the Authentication-Results of the first message that has one."""
    import re

    from aiosmtpd.smtp import SMTP

    reported: list[bool] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            now = time.monotonic_ns()
            with counter.get_lock():
                counter.value += len(envelope.rcpt_tos)
            if not reported:
                found = re.search(rb"(?:^|\n)Authentication-Results: [^;]*;(.*?)\r\n(?![ \t])",
                                  envelope.original_content, re.DOTALL)
                if found:
                    reported.append(True)
                    results.put(b" ".join(found.group(1).split()).decode())
            if records is not None:
                data: bytes = envelope.original_content
                start = data.find(b"X-Bench: ")
                if start >= 0:
                    tag = data[start + 9: data.find(b"\r\n", start)]
                    records.put((tag.decode(), now))
            return "250 OK"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), loop=loop, enable_SMTPUTF8=True, decode_data=False),
            "127.0.0.1", port)
        ready.set()
        async with server:
            await asyncio.Event().wait()

    asyncio.run(run())


class Sink:
    def __init__(self, record: bool) -> None:
        self.port = free_port()
        self.counter = multiprocessing.Value("l", 0)
        self.records: Any = multiprocessing.Queue() if record else None
        self.results: Any = multiprocessing.Queue()
        ready = multiprocessing.Event()
        self.process = multiprocessing.Process(
            target=sink_main, args=(self.port, self.counter, ready, self.records, self.results),
            daemon=True)
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the sink did not start")
        self.arrivals: list[tuple[str, int]] = []

    def drain(self) -> list[tuple[str, int]]:
        while self.records is not None:
            try:
                self.arrivals.append(self.records.get_nowait())
            except queue_mod.Empty:
                break
        return self.arrivals

    def wait_count(self, total: int, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while self.counter.value < total:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the sink got {self.counter.value} of {total}")
            self.drain()
            time.sleep(0.002)
        self.drain()

    def auth_results(self) -> str:
        try:
            return str(self.results.get(timeout=1))
        except queue_mod.Empty:
            return "none"

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# -- servers ----------------------------------------------------------------




def proc_cpu_s(pid: int, children: bool = False) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children
    return ticks / CLOCK_TICK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


class Server(Protocol):
    label: str
    port: int
    sender: str  # the domain its traffic comes from

    def start(self, sink_port: int) -> None: ...
    def stop(self) -> None: ...
    def cpu_s(self) -> float: ...


class Zonehost:
    def __init__(self, label: str, url: str, workdir: Path, dns_port: int,
                 sender: str = SENDER, **settings: str) -> None:
        self.label = label
        self.url = url
        self.workdir = workdir
        self.dns_port = dns_port
        self.sender = sender
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def start(self, sink_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
        env.update({
            "ZONEHOST_DATABASE_URL": self.url,
            "ZONEHOST_MX_FORWARDER_SRS_KEYS": "bench-key",
            "ZONEHOST_MX_FORWARDER_HOSTNAME": "mx.bench.test",
            "ZONEHOST_MX_FORWARDER_TRANSPORT": f"dest.test=127.0.0.1:{sink_port}",
            "ZONEHOST_MX_FORWARDER_RESOLVER": f"127.0.0.1:{self.dns_port}",  # BenchDns
            "ZONEHOST_MX_FORWARDER_MAX_MESSAGES_PER_CLIENT_PER_MINUTE": "10000000",
            "ZONEHOST_MX_FORWARDER_MAX_CONNECTIONS_PER_CLIENT": "1000",
        })
        env.update({f"ZONEHOST_MX_FORWARDER_{k.upper()}": v for k, v in self.settings.items()})
        log = open(self.workdir / f"zonehost-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zonehost", "mx-forwarder", "--listen",
             f"127.0.0.1:{self.port}"],
            env=env, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        wait_port(self.port)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def cpu_s(self) -> float:
        return 0.0 if self.proc is None else proc_cpu_s(self.proc.pid)


class Postfix:
    """Postfix 3.7 as a virtual-alias forwarder to the sink, on its own folders."""

    label = "Postfix 3.7"
    sender = SENDER

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / f"postfix-{uuid.uuid4().hex[:6]}"
        self.conf = self.dir / "conf"
        self.port = free_port()
        self.running = False

    def start(self, sink_port: int) -> None:
        for sub in ("conf", "queue", "data"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        lines = []
        for line in Path("/etc/postfix/master.cf").read_text().splitlines(keepends=True):
            f = line.split()
            if line[:1] not in "# \t\n" and len(f) >= 8:
                if f[0] == "smtp" and f[1] == "inet":
                    line = f"127.0.0.1:{self.port} inet n - n - - smtpd\n"
                elif f[4] == "y":  # no chroot: it would need copies of /etc files
                    f[4] = "n"
                    line = "  ".join(f) + "\n"
            lines.append(line)
        (self.conf / "master.cf").write_text("".join(lines))
        (self.conf / "virtual").write_text(f"{ALIAS} {TARGET}\n")
        (self.conf / "transport").write_text(f"dest.test smtp:[127.0.0.1]:{sink_port}\n")
        (self.conf / "main.cf").write_text(
            f"queue_directory = {self.dir}/queue\ndata_directory = {self.dir}/data\n"
            "mail_owner = postfix\nsetgid_group = postdrop\ncompatibility_level = 3.6\n"
            "myhostname = mx.bench.test\nmydestination =\ninet_interfaces = loopback-only\n"
            "inet_protocols = ipv4\nvirtual_alias_domains = hosted.test\n"
            f"virtual_alias_maps = texthash:{self.conf}/virtual\n"
            f"transport_maps = texthash:{self.conf}/transport\nmynetworks = 127.0.0.0/8\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
            "default_process_limit = 100\nsmtp_tls_security_level = may\n"
            "smtpd_client_connection_rate_limit = 0\nalias_maps =\nalias_database =\n"
            # the log must live under maillog_file_prefixes (default /var, /dev/stdout):
            # anything else makes every postfix command exit 1 without a word
            f"maillog_file_prefixes = {self.dir}\nmaillog_file = {self.dir}/maillog\n")
        check = subprocess.run(["postfix", "-c", str(self.conf), "check"],
                               capture_output=True, text=True, timeout=60, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"postfix check failed: {check.stderr or check.stdout}")
        started = subprocess.run(["postfix", "-c", str(self.conf), "start"],
                                 capture_output=True, text=True, timeout=60, check=False)
        if started.returncode != 0:
            log = (self.dir / "maillog").read_text()[-2000:] if (self.dir / "maillog").exists() else ""
            raise RuntimeError(f"postfix start failed: {started.stderr}{started.stdout}{log}")
        self.running = True
        pid = self.master_pid()
        if procs.NICE and pid is not None:  # its master starts a session of its own
            procs.boost(pid)  # the same footing as the bench's own session
            for child in children_of(pid):
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, child, procs.NICE)
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, procs.NICE)  # children it forks inherit it
        wait_port(self.port)

    def master_pid(self) -> int | None:
        try:
            return int((self.dir / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def cpu_s(self) -> float:
        pid = self.master_pid()
        if pid is None:
            return 0.0
        return proc_cpu_s(pid, children=True) + sum(proc_cpu_s(c) for c in children_of(pid))

    def stop(self) -> None:
        if self.running:
            subprocess.run(["postfix", "-c", str(self.conf), "stop"], check=False,
                           capture_output=True, timeout=60)
            self.running = False


# -- load -------------------------------------------------------------------


def send_burst(port: int, total: int, sender: str = SENDER) -> float:
    """`total` messages from SENDERS threads; seconds until the last 250."""
    per = [total // SENDERS + (1 if i < total % SENDERS else 0) for i in range(SENDERS)]
    errors: list[BaseException] = []
    body = message(domain=sender)

    def worker(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=120) as c:
                c.ehlo("bench.test")
                for _ in range(n):
                    c.sendmail(f"alice@{sender}", [ALIAS], body)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in per]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} senders failed: {errors[0]!r}")
    return time.perf_counter() - start


def send_steady(port: int, rate: float, seconds: float, threads: int = 10,
                sender: str = SENDER) -> tuple[dict[str, int], dict[str, int]]:
    """Message i is due at start + i/rate, sent from one of `threads` connections;
    (tag -> due time, tag -> time the client actually began the transaction), in ns."""
    total = int(rate * seconds)
    start = time.monotonic_ns() + 200_000_000
    scheduled: dict[str, int] = {}
    began: dict[str, int] = {}
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                c.ehlo("bench.test")
                for i in range(k, total, threads):
                    at = start + int(i * 1e9 / rate)
                    delay = (at - time.monotonic_ns()) / 1e9
                    if delay > 0:
                        time.sleep(delay)
                    tag = f"s{i}"
                    scheduled[tag] = at
                    began[tag] = time.monotonic_ns()
                    c.sendmail(f"alice@{sender}", [ALIAS], message(tag.encode(), sender))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} senders failed: {errors[0]!r}")
    return scheduled, began


def send_until_stopped(port: int, stop: threading.Event, prefix: str) -> set[str]:
    """SENDERS threads send unique tags until `stop` or an error; the tags that got a 250."""
    acked: set[str] = set()
    lock = threading.Lock()

    def worker(k: int) -> None:
        n = 0
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
                c.ehlo("bench.test")
                while not stop.is_set():
                    tag = f"{prefix}-{k}-{n}"
                    n += 1
                    c.sendmail("alice@sender.test", [ALIAS], message(tag.encode()))
                    with lock:
                        acked.add(tag)
        except (smtplib.SMTPException, OSError):
            pass  # the server was killed under us: that message was not acknowledged

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(SENDERS)]
    for t in workers:
        t.start()
    stop.wait()
    for t in workers:
        t.join(60)
    return acked


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


# -- runs -------------------------------------------------------------------


@dataclass
class Throughput:
    accepted_per_s: float
    delivered_per_s: float
    cpu_ms_per_message: float


def run_throughput(server: Server, total: int) -> Throughput:
    sink = Sink(record=False)
    try:
        server.start(sink.port)
        send_burst(server.port, min(100, total), server.sender)  # warm up: imports, caches
        sink.wait_count(min(100, total))
        sink.counter.value = 0
        cpu0 = server.cpu_s()
        start = time.perf_counter()
        accept_s = send_burst(server.port, total, server.sender)
        sink.wait_count(total)
        deliver_s = time.perf_counter() - start
        cpu = server.cpu_s() - cpu0
        checks = sink.auth_results()
    finally:
        server.stop()
        sink.stop()
    result = Throughput(total / accept_s, total / deliver_s, 1000 * cpu / total)
    print(f"{server.label:<34} accepted {result.accepted_per_s:7.0f}/s   delivered "
          f"{result.delivered_per_s:7.0f}/s   CPU {result.cpu_ms_per_message:5.2f} ms/message"
          f"   ({total} messages, load {os.getloadavg()[0]:.1f}; A-R: {checks})", flush=True)
    return result


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    late_p99_ms: float  # how late the client itself began (a loaded machine shows here)


def run_latency(server: Server, rate: float, seconds: float) -> Latency:
    sink = Sink(record=True)
    try:
        server.start(sink.port)
        send_burst(server.port, 50, server.sender)
        sink.wait_count(50)
        scheduled, began = send_steady(server.port, rate, seconds, sender=server.sender)
        sink.wait_count(50 + len(scheduled), timeout_s=120)
        deadline = time.monotonic() + 10  # the sink's reports trail its counter a little
        while not scheduled.keys() <= {tag for tag, _ in sink.drain()}:
            if time.monotonic() > deadline:
                raise RuntimeError("the sink did not report every arrival")
            time.sleep(0.05)
    finally:
        server.stop()
        sink.stop()
    arrived = {tag: t for tag, t in sink.arrivals if tag in scheduled}
    delays = [(arrived[tag] - at) / 1e6 for tag, at in scheduled.items()]
    late = [(began[tag] - at) / 1e6 for tag, at in scheduled.items()]
    result = Latency(percentile(delays, 50), percentile(delays, 99), max(delays),
                     percentile(late, 99))
    print(f"{server.label:<34} {rate:.0f} messages/s for {seconds:.0f} s: submission to arrival "
          f"p50 {result.p50_ms:.1f} ms   p99 {result.p99_ms:.1f} ms   max {result.max_ms:.1f} ms"
          f"   (client late p99 {result.late_p99_ms:.1f} ms)", flush=True)
    return result


@dataclass
class Crash:
    acked: int
    lost: int
    duplicates: int
    most_copies: int  # of any one message


def run_kills(server: Zonehost, rounds: int, kill_after_s: float) -> Crash:
    sink = Sink(record=True)
    acked: set[str] = set()
    try:
        for r in range(rounds):
            server.start(sink.port)
            stop = threading.Event()
            result: list[set[str]] = []

            def load(stop: threading.Event = stop, result: list[set[str]] = result,
                     prefix: str = f"k{r}") -> None:
                result.append(send_until_stopped(server.port, stop, prefix))

            loader = threading.Thread(target=load)
            loader.start()
            time.sleep(kill_after_s)
            server.kill9()  # mid-load: 250s sent, deliveries in flight
            stop.set()
            loader.join(120)
            acked |= result[0]
        server.start(sink.port)  # the last restart delivers what is left
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = {tag for tag, _ in sink.drain()}
            if acked <= seen:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # any late duplicate
    finally:
        server.stop()
        sink.stop()
    counts = Counter(tag for tag, _ in sink.drain())
    crash = Crash(len(acked), len(acked - set(counts)),
                  sum(n - 1 for n in counts.values() if n > 1), max(counts.values(), default=0))
    print(f"{server.label:<34} SIGKILL under load x{rounds}: {crash.acked} messages acknowledged, "
          f"{crash.lost} lost, {crash.duplicates} extra copies (at most {crash.most_copies} "
          "of one message)", flush=True)
    return crash


# -- the store --------------------------------------------------------------


def _key_record(key: Any) -> tuple[bytes, str]:
    """(PEM private key, TXT rdata of its DKIM public key record)."""
    from cryptography.hazmat.primitives import serialization

    pem = key.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    text = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    return pem, " ".join(f'"{text[i:i + 200]}"' for i in range(0, len(text), 200))


class BenchDns:
    """`zonehost nameserver` on the bench's store: the senders' SPF (an include
    chain), DKIM key and DMARC records (sender.test with TTL 300, cold.test the
    same with TTL 0), and the public key of our own signing key for `--sign`.
    Fills SIGNED with each sender's DKIM-Signature of the bench message."""

    def __init__(self, url: str, workdir: Path) -> None:
        import dkim
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.url = url
        self.port = free_port()
        self.key_file = workdir / "dkim.pem"
        pem, txt = _key_record(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.key_file.write_bytes(pem)
        sender_pem, sender_txt = _key_record(
            rsa.generate_private_key(public_exponent=65537, key_size=2048))
        soa = "@ 300 IN SOA ns1.{z}. hostmaster.{z}. 1 3600 600 86400 300\n@ 300 IN NS ns1.{z}.\n"
        sender = ('@ {ttl} IN TXT "v=spf1 include:_spf.{z} -all"\n'
                  '_spf {ttl} IN TXT "v=spf1 ip4:192.0.2.0/24 include:_out.{z} -all"\n'
                  '_out {ttl} IN TXT "v=spf1 ip4:198.51.100.0/24 ip4:127.0.0.1 -all"\n'
                  '_dmarc {ttl} IN TXT "v=DMARC1; p=reject"\n'
                  's1._domainkey {ttl} IN TXT {key}\n')
        zones = {
            SENDER: sender.format(ttl=300, z=SENDER, key=sender_txt),
            COLD_SENDER: sender.format(ttl=0, z=COLD_SENDER, key=sender_txt),
            "fwd.bench.test": f"bench._domainkey 300 IN TXT {txt}\n",
        }
        env = self.env()
        for name, records in zones.items():
            path = workdir / f"{name}.zone"
            path.write_text(f"$ORIGIN {name}.\n" + soa.format(z=name) + records)
            subprocess.run([sys.executable, "-m", "zonehost", "zone", "import", name, str(path)],
                           env=env, cwd=workdir, check=True, capture_output=True)
            if name in (SENDER, COLD_SENDER):
                SIGNED[name] = dkim.sign(
                    base_message(name), b"s1", name.encode(), sender_pem,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zonehost", "nameserver", "--listen",
             f"127.0.0.1:{self.port}"],
            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait()

    def wait(self, timeout_s: float = 60) -> None:
        import dns.exception
        import dns.message
        import dns.query

        query = dns.message.make_query("fwd.bench.test.", "SOA")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.5).answer:
                    return
            except (dns.exception.DNSException, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError("zonehost nameserver did not answer")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
        env["ZONEHOST_DATABASE_URL"] = self.url
        return env

    def signing(self) -> dict[str, str]:
        return {"sign_dkim": "true", "sign_arc": "true", "signing_domain": "fwd.bench.test",
                "signing_selector": "bench", "signing_key_file": str(self.key_file)}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def prepare_store(url: str) -> None:
    from storage import aliases
    from storage.db import connect
    from storage.migrate import upgrade
    from storage.models import Zone

    async def run() -> None:
        db = connect(url)
        try:
            await upgrade(db)
            async with db.write() as session:
                session.add(Zone(name="hosted.test.", serial=1, soa_mname="ns1.hosted.test.",
                                 soa_rname="hostmaster.hosted.test."))
            async with db.write() as session:
                await aliases.add_alias(session, ALIAS, [TARGET], verified=True)
        finally:
            await db.close()

    asyncio.run(run())


@contextlib.contextmanager
def pg_database(base_url: str) -> Iterator[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    base = make_url(base_url)
    name = f"mxbench_{uuid.uuid4().hex[:8]}"
    admin_url = base.set(drivername="postgresql", database="postgres")

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url.render_as_string(False))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pg", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--kill-after", type=float, default=1.5)
    parser.add_argument("--sign", action="store_true",
                        help="also SQLite with our own DKIM signature and ARC seal")
    parser.add_argument("--skip", default="", help="comma list of: throughput,latency,kill")
    procs.add_nice_argument(parser)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    with procs.niceness(args.nice):  # inherited by the forwarder and the sink
        return run(args, skip)


def run(args: argparse.Namespace, skip: set[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="mxbench-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        work.chmod(0o755)  # Postfix's daemons run as user postfix
        servers: list[Callable[[], Server]] = []
        killed: list[Callable[[], Server]] = []  # the SIGKILL runs: default configuration
        sqlite_url = f"sqlite+aiosqlite:///{work / 'bench.sqlite3'}"
        prepare_store(sqlite_url)
        bench_dns = BenchDns(sqlite_url, work)
        stack.callback(bench_dns.stop)
        ns = bench_dns.port
        servers.append(lambda: Zonehost("zonehost (SQLite)", sqlite_url, work, ns))
        killed.append(servers[-1])
        servers.append(lambda: Zonehost("zonehost (SQLite, A-R off)", sqlite_url, work, ns,
                                        auth_results="false"))
        servers.append(lambda: Zonehost("zonehost (SQLite, senders' TTL 0)", sqlite_url, work,
                                        ns, sender=COLD_SENDER))
        if args.sign:
            servers.append(lambda: Zonehost("zonehost (SQLite, + DKIM + ARC)", sqlite_url, work,
                                            ns, **bench_dns.signing()))
        pg_url = None
        if args.pg:
            pg_url = stack.enter_context(pg_database(args.pg))
            prepare_store(pg_url)
            servers.append(lambda: Zonehost("zonehost (PostgreSQL)", pg_url, work, ns))
            killed.append(servers[-1])
        if not args.no_postfix:
            if shutil.which("postfix") is None:
                print("postfix is not installed (apt-get install postfix): no comparison")
            else:
                servers.append(lambda: Postfix(work))
        print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, niceness {os.nice(0)}"
              f" (scheduling group too)", flush=True)
        throughput: dict[str, Throughput] = {}
        if "throughput" not in skip:
            for make in servers:
                server = make()
                throughput[server.label] = run_throughput(server, args.messages)
            base = throughput.get(Postfix.label)
            for label, r in throughput.items():
                if base is not None and label != Postfix.label:
                    print(f"{label} / Postfix: accepted {r.accepted_per_s / base.accepted_per_s:.2f}x"
                          f"   delivered {r.delivered_per_s / base.delivered_per_s:.2f}x"
                          f"   CPU per message {r.cpu_ms_per_message / base.cpu_ms_per_message:.2f}x",
                          flush=True)
        if "latency" not in skip:
            for make in servers:
                run_latency(make(), args.rate, args.seconds)
        if "kill" not in skip and args.kills > 0:
            for make in killed:
                server = make()
                assert isinstance(server, Zonehost)
                run_kills(server, args.kills, args.kill_after)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
