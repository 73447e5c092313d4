"""schemathesis against a running `zonehost zoneapi`: every operation of
/api/v1/openapi.json is called with generated valid and invalid input,
authenticated as the leader of a seeded, active account (a token that may
manage the account, used from an allowlisted address so that sensitive
actions pass). No answer may be a 5xx, and every status code, content type
and response body must be the documented ones.

Every operation is run, billing's and the mail aliases' included: the zone
is also a domain of the account's portfolio (priced, so it can be renewed),
and the platform's MX hosts are configured. No card payment provider is:
checkout and the provider's webhook answer their documented 503 (JSON
error), the one 5xx allowed, and for those two operations only. The seed
is fixed so CI sees the same cases each time.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import update

from billing import orders
from billing.config import BillingConfig
from storage import zones as store
from storage.db import connect
from storage.dnsdata import zone_from_text, zone_origin
from storage.models import Account, AccountStatus, Zone
from storage.models.auth import ApiToken
from tests.conftest import free_port
from tests.unit.billing.support import add_domain, set_prices
from zoneapi.app import create_app
from zoneapi.config import ZoneApiConfig, new_secret_key
from zoneapi.crypto import digest, new_token
from zoneapi.keys import CONTEXT
from zoneapi.services import accounts

pytest.importorskip("schemathesis", reason="schemathesis is in the test extras")

pytestmark = pytest.mark.slow

ZONE = "fuzz.example."
ZONE_TEXT = f"""$ORIGIN {ZONE}
@ 3600 IN SOA ns1.host.example. hostmaster.host.example. 1 7200 3600 1209600 300
@ 3600 IN NS ns1.host.example.
@ 3600 IN NS ns2.host.example.
www 300 IN A 192.0.2.1
mail 300 IN MX 10 mx.host.example.
"""
DOMAIN = ZONE.rstrip(".")
CONFIG = """
[parameters]
"path.zone" = "{zone}"
"path.domain" = "{domain}"
"path.number" = "{order}"

# No payment provider is configured: these answer the 503 they document.
[[operations]]
include-operation-id = ["checkout", "webhook"]
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
RUN_TIMEOUT_S = 240


async def seed(database_url: str) -> tuple[str, str]:
    """An active account owning ZONE (hosted, and in its portfolio due for renewal,
    with a pending renewal order), 127/8 allowlisted; its leader's token and the
    order's number."""
    db = connect(database_url)
    ctx = create_app(ZoneApiConfig(secret_key=new_secret_key()), db)[CONTEXT]
    try:
        async with db.write() as session:
            account, user = await accounts.sign_up(
                session, ctx, login="fuzzer", password="a long fuzzing password",
                email="fuzzer@fuzz.example", name="Fuzz", country="FR", postal_address="",
                phone=None)
            await session.execute(update(Account).where(Account.id == account.id).values(
                status=AccountStatus.ACTIVE, ip_allowlist=["127.0.0.0/8"]))
            origin = zone_origin(ZONE)
            await store.replace_zone(session, zone_from_text(ZONE_TEXT, origin), store.OPERATOR)
            await session.execute(update(Zone).where(Zone.name == ZONE)
                                  .values(account_id=account.id))
            secret = new_token()
            session.add(ApiToken(token_hash=digest(secret), user_id=user.id, name="fuzz",
                                 allowed_subnets=[], policies=[], perm_manage=True))
        await add_domain(db, account.id, DOMAIN, date.today() + timedelta(days=20))
        await set_prices(db, renew=1000, restore=2500, register=900, mail_redirect_pack=500)
        async with db.write() as session:
            order = await orders.create_order(
                session, BillingConfig(), account.id,
                [orders.OrderItem(orders.ItemKind.RENEW, DOMAIN)], store.OPERATOR, date.today())
            number = order.number
    finally:
        await db.close()
    return secret, number


async def wait_up(base: str, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            assert proc.returncode is None, "zonehost zoneapi exited early"
            try:
                async with http.get(f"{base}/health") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            assert time.monotonic() < deadline, "the API did not answer within 30 s"
            await asyncio.sleep(0.2)


def schemathesis_command() -> list[str]:
    script = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if script:
        return [script]
    code = "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())"
    return [sys.executable, "-c", code]


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    database_url: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    token, order = await seed(database_url)
    port = free_port()
    env = {**cli_env, "ZONEHOST_ZONEAPI_SECRET_KEY_FILE": str(tmp_path / "zoneapi.key"),
           # Generated requests come fast; the limiter's 429s would only hide operations.
           "ZONEHOST_ZONEAPI_RATE_PER_ADDRESS": "100000", "ZONEHOST_ZONEAPI_RATE_PER_TOKEN": "100000",
           "ZONEHOST_ZONEAPI_RATE_BURST_PER_ADDRESS": "100000",
           "ZONEHOST_ZONEAPI_RATE_BURST_PER_TOKEN": "100000",
           "ZONEHOST_ZONEAPI_MAIL_MX_HOSTS": "mx1.host.example,mx2.host.example"}
    with (tmp_path / "zoneapi.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "zonehost", "zoneapi", "--listen", f"127.0.0.1:{port}",
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        await wait_up(base, proc)
        (tmp_path / "schemathesis.toml").write_text(
            CONFIG.format(zone=ZONE, domain=DOMAIN, order=order))
        fuzz = await asyncio.create_subprocess_exec(
            *schemathesis_command(), "--config-file", str(tmp_path / "schemathesis.toml"),
            "--no-color", "run", f"{base}/openapi.json",
            "-H", f"Authorization: Bearer {token}", "--checks", CHECKS,
            "--phases", "examples,coverage,fuzzing", "--max-examples", "12", "--seed", "7",
            "--generation-database", "none", "--workers", "1", "--request-timeout", "20",
            "--output-truncate", "false",
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(fuzz.communicate(), RUN_TIMEOUT_S)
        finally:
            if fuzz.returncode is None:
                fuzz.kill()
                await fuzz.wait()
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 15)
    output = out.decode(errors="replace")
    assert fuzz.returncode == 0, output[-6000:]
    assert " passed" in output and "Tested:" in output, output[-3000:]
    server_log = (tmp_path / "zoneapi.log").read_text()
    assert "internal error" not in server_log, server_log[-3000:]
