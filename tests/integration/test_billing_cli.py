"""The operator's command line: prices, portfolio, orders, payments recorded
by hand (twice: a clear error), invoices as PDF, the work queue, the job and
query statistics.

The commands run in this process (tests/unit/billing/inprocess.py: same
parser, settings and code, no interpreter start-up); one test runs the real
`python -m zonehost` in a subprocess for the entry point, the environment
and the exit status."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.prices import Product, load_price_book
from storage import nsstatus
from storage.db import Database
from tests.conftest import REPO_ROOT
from tests.unit.billing.inprocess import InProcessCli
from tests.unit.billing.support import add_domain, host_zone, make_account


@pytest.fixture
def zh(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
       capsys: pytest.CaptureFixture[str]) -> InProcessCli:
    return InProcessCli(cli_env, monkeypatch, capsys)


async def test_operator_workflow(db: Database, zh: InProcessCli, tmp_path: Path) -> None:
    account = str(await make_account(db))
    steps = [
        ("billing", "price", "set", "default", "fr", "renew", "1000"),
        ("billing", "price", "set", account, "*", "renew", "800"),
        ("billing", "contact", "add", account, "Billing Dept", "billing@acme.example"),
    ]
    for step in steps:
        done = await zh(*step)
        assert done.returncode == 0, done.stderr
    contact = done.stdout.strip()
    done = await zh("billing", "domain", "add", "acme.fr", "--account", account,
                    "--expires", "2027-03-31", "--billing", contact)
    assert done.returncode == 0 and "profile standard" in done.stdout, done.stderr
    done = await zh("billing", "order", "create", account, "renew:acme.fr",
                    "--date", "2027-03-01")
    assert done.returncode == 0, done.stderr
    number = done.stdout.split()[0]
    assert "9.60 EUR" in done.stdout  # the account's own price, 8.00 + 20 % VAT

    bad = await zh("billing", "payment", "record", number, "--method", "transfer",
                   "--reference", "ACME MARCH")
    assert bad.returncode == 1 and "does not name order" in bad.stderr
    first = await zh("billing", "payment", "record", number, "--method", "transfer",
                     "--reference", f"VIR {number}")
    assert first.returncode == 0 and "invoice 1" in first.stdout, first.stderr
    second = await zh("billing", "payment", "record", number, "--method", "transfer",
                      "--reference", f"VIR {number}")
    assert second.returncode == 1
    assert f"order {number} was already paid: transfer" in second.stderr

    pdf = tmp_path / "invoice.pdf"
    done = await zh("billing", "invoice", "pdf", "1", "-o", str(pdf))
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF-")

    queue = await zh("orders", "list")
    item = queue.stdout.split()[0]
    assert "renew\tacme.fr" in queue.stdout and number in queue.stdout
    done = await zh("orders", "done", item, "--note", "renewed at the registry")
    assert done.returncode == 0 and f"(order {number})" in done.stdout
    shown = await zh("billing", "order", "show", number)
    assert f"{number}\tdone" in shown.stdout

    # Renewed to 2028-03-31: the first reminder of the next term, two months before.
    run = await zh("billing", "run", "--date", "2028-01-31")
    assert run.returncode == 0, run.stderr
    assert "reminder 1 sent\tacme.fr" in run.stdout and "1 reminders" in run.stdout


async def test_query_statistics(db: Database, zh: InProcessCli) -> None:
    account = await make_account(db)
    await host_zone(db, "seen.fr", account)
    today = datetime.now(UTC).date()
    await add_domain(db, account, "seen.fr", today + timedelta(days=100))
    async with db.write() as session:  # as the nameserver flushes its counters
        await nsstatus.add_query_counts(session, today, {("seen.fr.", 1, 0): 6,
                                                         ("seen.fr.", 28, 3): 2})
        await nsstatus.add_query_counts(session, today - timedelta(days=1),
                                        {("seen.fr.", 15, 0): 1})
    out = await zh.ok("billing", "domain", "stats", "seen.fr", "--from",
                      (today - timedelta(days=2)).isoformat())
    assert out.splitlines()[:3] == [f"{today - timedelta(days=2)}\t0",
                                    f"{today - timedelta(days=1)}\t1", f"{today}\t8"]
    assert f"seen.fr: 9 queries from {today - timedelta(days=2)} to {today}" in out
    assert "by type: A 6, AAAA 2, MX 1" in out and "by rcode: NOERROR 7, NXDOMAIN 2" in out
    csv = await zh.ok("billing", "domain", "stats", "seen.fr", "--csv")
    assert csv.splitlines() == ["day,qtype,rcode,queries",
                                f"{today - timedelta(days=1)},MX,NOERROR,1",
                                f"{today},A,NOERROR,6", f"{today},AAAA,NXDOMAIN,2"]
    missing = await zh("billing", "domain", "stats", "other.fr")
    assert missing.returncode == 1 and "other.fr is not in the portfolio" in missing.stderr
    backwards = await zh("billing", "domain", "stats", "seen.fr", "--from", "2027-02-01",
                         "--to", "2027-01-01")
    assert backwards.returncode == 1 and "starts (2027-02-01) after it ends" in backwards.stderr
    assert (await zh("billing", "domain", "stats", "seen.fr", "--to", "soon")).returncode == 2


async def test_the_real_command_line(db: Database, cli_env: dict[str, str]) -> None:
    """`python -m zonehost` itself: the store from ZONEHOST_DATABASE_URL, the
    output on stdout, exit status 0 (the other tests cover the failures in-process:
    `__main__` only hands main()'s status to sys.exit)."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "zonehost", "billing", "price", "set",
                         "default", "fr", "renew", "1000"],
        env=cli_env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert (done.returncode, done.stdout) == (0, "default\tfr\trenew\t1000\n"), done.stderr
    async with db.read() as session:  # written to the store the environment named
        assert (await load_price_book(session, None)).get("fr", Product.RENEW) == 1000
