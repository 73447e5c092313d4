"""Mail forwarder throughput: messages accepted per second (durably queued,
250 received) and delivered per second to a local sink, 2 KiB messages,
20 concurrent senders, on SQLite and (with --pg URL) PostgreSQL; and, when
Postfix is installed, the same for Postfix as a virtual-alias forwarder.

    python bench/mx_throughput.py [--messages 2000] [--pg postgresql+asyncpg://postgres@127.0.0.1/postgres]

Everything runs on loopback; each server is stopped at the end. The
forwarder runs as `python -m zonehost mx-forwarder` (a separate process),
the sink in another process, the senders (smtplib, one connection each,
many messages per connection) in threads of this one.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SENDERS = 20
BODY = b"Subject: bench\r\nFrom: a@sender.test\r\n\r\n" + (b"y" * 62 + b"\r\n") * 32  # ~2 KiB


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sink_main(port: int, counter: Any, ready: Any) -> None:
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with counter.get_lock():
                counter.value += len(envelope.rcpt_tos)
            return "250 OK"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: SMTP(Handler(), loop=loop, enable_SMTPUTF8=True), "127.0.0.1", port)
        ready.set()
        async with server:
            await asyncio.Event().wait()

    asyncio.run(run())


def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                s.recv(100)
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


def send_all(port: int, total: int, rcpt: str) -> float:
    """Send `total` messages from SENDERS threads; seconds until the last 250."""
    per = [total // SENDERS + (1 if i < total % SENDERS else 0) for i in range(SENDERS)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as c:
                c.ehlo("bench.test")
                for _ in range(n):
                    c.sendmail("alice@sender.test", [rcpt], BODY)
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


def wait_count(counter: Any, total: int, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while counter.value < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {counter.value}/{total} delivered")
        time.sleep(0.005)


def run_one(label: str, start_server: Any, total: int, rcpt: str) -> dict[str, float]:
    counter = multiprocessing.Value("l", 0)
    ready = multiprocessing.Event()
    sink_port = free_port()
    sink = multiprocessing.Process(target=sink_main, args=(sink_port, counter, ready),
                                   daemon=True)
    sink.start()
    ready.wait(30)
    stop = start_server(sink_port)
    try:
        port = stop.port
        wait_port(port)
        start = time.perf_counter()
        accept_s = send_all(port, total, rcpt)
        wait_count(counter, total)
        deliver_s = time.perf_counter() - start
    finally:
        stop()
        sink.terminate()
        sink.join(5)
    result = {"accepted_per_s": total / accept_s, "delivered_per_s": total / deliver_s}
    print(f"{label:<28} accepted {result['accepted_per_s']:8.0f}/s   "
          f"delivered {result['delivered_per_s']:8.0f}/s   ({total} messages)", flush=True)
    return result


class Stopper:
    def __init__(self, port: int, stop: Any) -> None:
        self.port = port
        self._stop = stop

    def __call__(self) -> None:
        self._stop()


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
                await aliases.add_alias(session, "contact@hosted.test", ["me@dest.test"],
                                        verified=True)
        finally:
            await db.close()

    asyncio.run(run())


def zonehost_server(url: str, workdir: Path) -> Any:
    def start(sink_port: int) -> Stopper:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
        env.update({
            "ZONEHOST_DATABASE_URL": url,
            "ZONEHOST_MX_FORWARDER_SRS_KEYS": "bench-key",
            "ZONEHOST_MX_FORWARDER_HOSTNAME": "mx.bench.test",
            "ZONEHOST_MX_FORWARDER_TRANSPORT": f"dest.test=127.0.0.1:{sink_port}",
            "ZONEHOST_MX_FORWARDER_RESOLVER": "127.0.0.1:9",
            "ZONEHOST_MX_FORWARDER_AUTH_RESULTS": "false",
            "ZONEHOST_MX_FORWARDER_POLL_INTERVAL": "0.2",
            "ZONEHOST_MX_FORWARDER_MAX_MESSAGES_PER_CLIENT_PER_MINUTE": "10000000",
            "ZONEHOST_MX_FORWARDER_MAX_CONNECTIONS_PER_CLIENT": "1000",
        })
        proc = subprocess.Popen(
            [sys.executable, "-m", "zonehost", "mx-forwarder", "--listen", f"127.0.0.1:{port}"],
            env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop() -> None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

        return Stopper(port, stop)

    return start


def postfix_server(workdir: Path) -> Any:
    """Postfix as a virtual-alias forwarder, its own config and queue folders."""

    def start(sink_port: int) -> Stopper:
        port = free_port()
        conf = workdir / "postfix"
        queue = workdir / "postfix-queue"
        data = workdir / "postfix-data"
        for d in (conf, queue, data):
            d.mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/postfix/master.cf", conf / "master.cf")
        master = (conf / "master.cf").read_text().replace(
            "smtp      inet  n       -       y       -       -       smtpd",
            f"127.0.0.1:{port} inet n - n - - smtpd")
        (conf / "master.cf").write_text(master)
        (conf / "virtual").write_text("contact@hosted.test me@dest.test\n")
        (conf / "transport").write_text(f"dest.test smtp:[127.0.0.1]:{sink_port}\n")
        (conf / "main.cf").write_text(
            f"queue_directory = {queue}\ndata_directory = {data}\n"
            "compatibility_level = 3.6\nmyhostname = mx.bench.test\nmydestination =\n"
            "inet_interfaces = loopback-only\ninet_protocols = ipv4\n"
            f"virtual_alias_domains = hosted.test\nvirtual_alias_maps = texthash:{conf}/virtual\n"
            f"transport_maps = texthash:{conf}/transport\nmynetworks = 127.0.0.0/8\n"
            "smtpd_recipient_restrictions = permit_mynetworks, reject\n"
            "default_process_limit = 100\nsmtp_tls_security_level = may\n"
            "maillog_file = /dev/null\n"
            "smtpd_client_connection_rate_limit = 0\n"
            f"alias_maps =\nalias_database =\n")
        env = dict(os.environ, MAIL_CONFIG=str(conf))
        subprocess.run(["postfix", "-c", str(conf), "check"], env=env, check=False,
                       capture_output=True)
        subprocess.run(["postfix", "-c", str(conf), "start"], env=env, check=True,
                       capture_output=True, timeout=60)

        def stop() -> None:
            subprocess.run(["postfix", "-c", str(conf), "stop"], env=env, check=False,
                           capture_output=True, timeout=60)

        return Stopper(port, stop)

    return start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--pg", help="PostgreSQL server URL (a scratch database is created)")
    parser.add_argument("--no-postfix", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="mxbench-") as tmp:
        work = Path(tmp)
        sqlite_url = f"sqlite+aiosqlite:///{work / 'bench.sqlite3'}"
        prepare_store(sqlite_url)
        results["zonehost sqlite"] = run_one("zonehost (SQLite)", zonehost_server(sqlite_url, work),
                                             args.messages, "contact@hosted.test")
        if args.pg:
            import asyncpg
            from sqlalchemy.engine import make_url

            base = make_url(args.pg)
            name = f"mxbench_{uuid.uuid4().hex[:8]}"
            admin_url = base.set(drivername="postgresql", database="postgres")

            async def admin(sql: str) -> None:
                conn = await asyncpg.connect(admin_url.render_as_string(False))
                try:
                    await conn.execute(sql)
                finally:
                    await conn.close()

            asyncio.run(admin(f'CREATE DATABASE "{name}"'))
            pg_url = base.set(database=name).render_as_string(False)
            try:
                prepare_store(pg_url)
                results["zonehost postgresql"] = run_one(
                    "zonehost (PostgreSQL)", zonehost_server(pg_url, work), args.messages,
                    "contact@hosted.test")
            finally:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not args.no_postfix and shutil.which("postfix"):
            results["postfix"] = run_one("Postfix (virtual alias)", postfix_server(work),
                                         args.messages, "contact@hosted.test")
            for key in ("zonehost sqlite", "zonehost postgresql"):
                if key in results:
                    r, p = results[key], results["postfix"]
                    print(f"{key} / postfix: accepted {r['accepted_per_s'] / p['accepted_per_s']:.2f}x"
                          f"   delivered {r['delivered_per_s'] / p['delivered_per_s']:.2f}x")
        elif not args.no_postfix:
            print("postfix not installed: no comparison (apt-get install postfix)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
