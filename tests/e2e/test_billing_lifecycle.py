"""The lifecycle seen from outside: `zonehost billing run --date` suspends a
domain at expiry + 5, the real nameserver then answers REFUSED over UDP and
the real forwarder refuses its aliases with 550; paying the renewal with
the operator CLI at + 20 brings both back.

The nameserver and the forwarder are real processes, started side by side;
the operator's commands run in this process (tests/unit/billing/inprocess.py),
which spares an interpreter start-up per command and changes nothing the
servers see: they follow the store, not the CLI."""

from __future__ import annotations

import asyncio
import select
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import dns.rcode
import pytest

from storage import aliases
from storage.db import Database
from tests.conftest import REPO_ROOT, free_port
from tests.unit.billing.inprocess import InProcessCli
from tests.unit.billing.support import add_domain, host_zone, make_account, set_prices

EXPIRY = date(2027, 3, 31)


def _has_commands(*names: str) -> bool:
    import argparse

    from zonehost.cli import build_parser

    parser = build_parser()
    choices = next(a.choices for a in parser._actions
                   if isinstance(a, argparse._SubParsersAction))
    return all(n in choices for n in names)


pytestmark = pytest.mark.skipif(
    not _has_commands("nameserver", "mx-forwarder"),
    reason="needs `zonehost nameserver` and `zonehost mx-forwarder`",
)


@pytest.fixture
def cli(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> InProcessCli:
    return InProcessCli(cli_env, monkeypatch, capsys)


class Forwarder:
    """`zonehost mx-forwarder` on a free port, its log kept in a file so that a
    failed start says why (the port race of free_port() is retried)."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        from tests.e2e.mx_support import SRS_KEY

        self.env = {**env, "ZONEHOST_MX_FORWARDER_SRS_KEYS": SRS_KEY.decode(),
                    "ZONEHOST_MX_FORWARDER_HOSTNAME": "mx.zonehost.test",
                    "ZONEHOST_MX_FORWARDER_RESOLVER": "127.0.0.1:9",
                    "ZONEHOST_MX_FORWARDER_AUTH_RESULTS": "false",
                    "ZONEHOST_MX_FORWARDER_SPOOL_DIR": str(tmp / "spool")}
        self.log = tmp / "mx-forwarder.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "zonehost", "mx-forwarder", "--listen",
                 f"127.0.0.1:{self.port}", "--no-delivery"],
                env=self.env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log)

    def ready(self, timeout_s: float = 60.0, attempts: int = 3) -> int:
        """The port, once the forwarder says it listens."""
        for attempt in range(attempts):
            proc = self.proc
            assert proc is not None and proc.stdout is not None
            line = b""
            if select.select([proc.stdout], [], [], timeout_s)[0]:
                line = proc.stdout.readline()
            if b"listening" in line:
                return self.port
            self.stop()
            log = self.log.read_text(errors="replace")
            if "in use" in log and attempt + 1 < attempts:
                self.start()  # another process took the port meanwhile
                continue
            raise AssertionError(f"mx-forwarder did not start (exit {proc.returncode}): "
                                 f"{line!r}\n{log}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@contextmanager
def forwarder(env: dict[str, str], tmp: Path) -> Iterator[Callable[[], int]]:
    """Start `zonehost mx-forwarder`; yields a call that waits until it listens."""
    mx = Forwarder(env, tmp)
    mx.start()
    try:
        yield mx.ready
    finally:
        mx.stop()


def rcpt(port: int, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo("client.test")
        smtp.mail("someone@sender.test")
        code, _ = smtp.rcpt(address)
        return code


def dns_rcode(port: int, name: str) -> int:
    from tests.e2e.nameserver_process import query

    return query(port, name, "A", 2.0).rcode()


def eventually(check: object, want: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()  # type: ignore[operator]
        if got == want or time.monotonic() > deadline:
            assert got == want
            return
        time.sleep(0.1)


async def test_suspension_is_seen_on_dns_and_smtp_and_renewal_brings_it_back(
    db: Database, cli_env: dict[str, str], cli: InProcessCli, tmp_path: Path
) -> None:
    from tests.e2e.nameserver_process import running_nameserver

    account = await make_account(db)
    await set_prices(db, renew=1200)
    await host_zone(db, "walk.fr", account)
    await add_domain(db, account, "walk.fr", EXPIRY)
    async with db.write() as session:
        await aliases.add_alias(session, "info@walk.fr", ["someone@example.org"], verified=True)

    def day(offset: int) -> str:
        return (EXPIRY + timedelta(days=offset)).isoformat()

    with forwarder(cli_env, tmp_path) as mx_ready, running_nameserver(cli_env, "walk.fr.") as ns:
        mx = mx_ready()  # both processes started together
        await cli.ok("billing", "run", "--date", day(4))
        assert dns_rcode(ns, "www.walk.fr.") == dns.rcode.NOERROR
        assert await asyncio.to_thread(rcpt, mx, "info@walk.fr") == 250

        out = await cli.ok("billing", "run", "--date", day(5))
        assert "suspended\twalk.fr" in out
        await asyncio.to_thread(eventually, lambda: dns_rcode(ns, "www.walk.fr."),
                                dns.rcode.REFUSED)
        # The forwarder answers RCPT from its cache, fresh to within 0.5 s of the
        # feed (mx_forwarder/aliascache.py): the suspension shows there as soon.
        await asyncio.to_thread(eventually, lambda: rcpt(mx, "info@walk.fr"), 550)

        order = (await cli.ok("billing", "order", "create", str(account), "renew:walk.fr",
                              "--date", day(20))).split()[0]
        paid = await cli.ok("billing", "payment", "record", order, "--method", "transfer",
                            "--reference", f"VIR {order} ACME", "--date", day(20))
        assert "paid" in paid and "invoice 1" in paid
        await asyncio.to_thread(eventually, lambda: dns_rcode(ns, "www.walk.fr."),
                                dns.rcode.NOERROR)
        await asyncio.to_thread(eventually, lambda: rcpt(mx, "info@walk.fr"), 250)
        assert "walk.fr" in await cli.ok("orders", "list")  # the registry renewal is queued
