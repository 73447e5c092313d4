"""The operator's command line: prices, portfolio, orders, payments recorded
by hand (twice: a clear error), invoices as PDF, the work queue and the job."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from storage.db import Database
from tests.conftest import REPO_ROOT
from tests.unit.billing.support import make_account


async def zh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "zonehost", *args], env=env, cwd=REPO_ROOT,
        capture_output=True, text=True, timeout=120, check=False)


async def test_operator_workflow(db: Database, cli_env: dict[str, str], tmp_path: Path) -> None:
    account = str(await make_account(db))
    steps = [
        ("billing", "price", "set", "default", "fr", "renew", "1000"),
        ("billing", "price", "set", account, "*", "renew", "800"),
        ("billing", "contact", "add", account, "Billing Dept", "billing@acme.example"),
    ]
    for step in steps:
        done = await zh(cli_env, *step)
        assert done.returncode == 0, done.stderr
    contact = done.stdout.strip()
    done = await zh(cli_env, "billing", "domain", "add", "acme.fr", "--account", account,
                    "--expires", "2027-03-31", "--billing", contact)
    assert done.returncode == 0 and "profile standard" in done.stdout, done.stderr
    done = await zh(cli_env, "billing", "order", "create", account, "renew:acme.fr",
                    "--date", "2027-03-01")
    assert done.returncode == 0, done.stderr
    number = done.stdout.split()[0]
    assert "9.60 EUR" in done.stdout  # the account's own price, 8.00 + 20 % VAT

    bad = await zh(cli_env, "billing", "payment", "record", number, "--method", "transfer",
                   "--reference", "ACME MARCH")
    assert bad.returncode == 1 and "does not name order" in bad.stderr
    first = await zh(cli_env, "billing", "payment", "record", number, "--method", "transfer",
                     "--reference", f"VIR {number}")
    assert first.returncode == 0 and "invoice 1" in first.stdout, first.stderr
    second = await zh(cli_env, "billing", "payment", "record", number, "--method", "transfer",
                      "--reference", f"VIR {number}")
    assert second.returncode == 1
    assert f"order {number} was already paid: transfer" in second.stderr

    pdf = tmp_path / "invoice.pdf"
    done = await zh(cli_env, "billing", "invoice", "pdf", "1", "-o", str(pdf))
    assert done.returncode == 0 and pdf.read_bytes().startswith(b"%PDF-")

    queue = await zh(cli_env, "orders", "list")
    item = queue.stdout.split()[0]
    assert "renew\tacme.fr" in queue.stdout and number in queue.stdout
    done = await zh(cli_env, "orders", "done", item, "--note", "renewed at the registry")
    assert done.returncode == 0 and f"(order {number})" in done.stdout
    shown = await zh(cli_env, "billing", "order", "show", number)
    assert f"{number}\tdone" in shown.stdout

    # Renewed to 2028-03-31: the first reminder of the next term, two months before.
    run = await zh(cli_env, "billing", "run", "--date", "2028-01-31")
    assert run.returncode == 0, run.stderr
    assert "reminder 1 sent\tacme.fr" in run.stdout and "1 reminders" in run.stdout
