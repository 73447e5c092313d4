"""What the zone API benchmarks share: a fresh store, a seeded account with
an API token, and the `zonehost zoneapi` / `zonehost nameserver` processes
(started in their own sessions, stopped by id)."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Self

import aiohttp
from sqlalchemy import update
from sqlalchemy.engine import make_url

from bench.dns import probe, procs
from storage import zones as store
from storage.db import connect
from storage.dnsdata import zone_from_text, zone_origin
from storage.migrate import upgrade
from storage.models import Account, AccountStatus, Zone
from storage.models.auth import ApiToken
from zoneapi.app import create_app
from zoneapi.config import ZoneApiConfig, new_secret_key
from zoneapi.crypto import digest, new_token
from zoneapi.keys import CONTEXT
from zoneapi.services import accounts

SOURCE = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60.0

ZONE = """$ORIGIN {origin}
@ 3600 IN SOA ns1.host.example. hostmaster.host.example. 1 7200 3600 1209600 300
@ 3600 IN NS ns1.host.example.
@ 3600 IN NS ns2.host.example.
www 300 IN A 192.0.2.1
"""


async def fresh_database(url: str) -> str:
    """Migrate `url`; a PostgreSQL database of that name is dropped and created first."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        import asyncpg

        name = parsed.database or f"zh_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(
            parsed.set(drivername="postgresql", database="postgres").render_as_string(False))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = parsed.set(database=name).render_as_string(hide_password=False)
    db = connect(url)
    try:
        await upgrade(db)
    finally:
        await db.close()
    return url


async def drop_database(url: str) -> None:
    """Drop the PostgreSQL database fresh_database() made (SQLite files go with their folder)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    import asyncpg

    admin = await asyncpg.connect(
        parsed.set(drivername="postgresql", database="postgres").render_as_string(False))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await admin.close()


async def seed_account(url: str, *zones: str, extra_rrsets: int = 0) -> str:
    """An active account owning `zones` (each with `extra_rrsets` more A
    RRsets h0, h1, ...), whose addresses 127/8 and ::1 are allowlisted
    (edits pass the sensitive-action gate); its token's secret."""
    db = connect(url)
    ctx = create_app(ZoneApiConfig(secret_key=new_secret_key()), db)[CONTEXT]
    try:
        async with db.write() as session:
            account, user = await accounts.sign_up(
                session, ctx, login="bench", password="a long bench password",
                email="bench@bench.example", name="Bench", country="FR", postal_address="",
                phone=None)
            account.status = AccountStatus.ACTIVE
            await session.flush()
            await session.execute(update(Account).where(Account.id == account.id)
                                  .values(ip_allowlist=["127.0.0.0/8", "::1/128"]))
            for zone in zones:
                origin = zone_origin(zone)
                text = ZONE.format(origin=origin.to_text()) + "".join(
                    f"h{i} 300 IN A 10.9.{i // 256 % 256}.{i % 256}\n" for i in range(extra_rrsets))
                await store.replace_zone(session, zone_from_text(text, origin), store.OPERATOR)
                await session.execute(update(Zone).where(Zone.name == origin.to_text())
                                      .values(account_id=account.id))
            secret = new_token()
            session.add(ApiToken(token_hash=digest(secret), user_id=user.id, name="bench",
                                 allowed_subnets=[], policies=[], perm_manage=False))
    finally:
        await db.close()
    return secret


def zonehost_env(database_url: str, workdir: Path, source: Path = SOURCE) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
    env["ZONEHOST_DATABASE_URL"] = database_url
    env["ZONEHOST_ZONEAPI_SECRET_KEY_FILE"] = str(workdir / "zoneapi.key")
    # The bench measures the edit path, not the limiter's refusals.
    env["ZONEHOST_ZONEAPI_RATE_PER_TOKEN"] = env["ZONEHOST_ZONEAPI_RATE_PER_ADDRESS"] = "1e9"
    env["ZONEHOST_ZONEAPI_RATE_BURST_PER_TOKEN"] = "1000000000"
    env["ZONEHOST_ZONEAPI_RATE_BURST_PER_ADDRESS"] = "1000000000"
    env["PYTHONPATH"] = os.pathsep.join([str(source), *filter(None, [env.get("PYTHONPATH")])])
    return env


class ApiServer:
    """`zonehost zoneapi` on a free port, for the length of an `async with`;
    `source`: the checkout the server runs from (an older one, to compare);
    `workers`: its --workers (processes forked by the one started here)."""

    def __init__(self, database_url: str, workdir: Path, profile: Path | None = None,
                 source: Path = SOURCE, workers: int = 1) -> None:
        if profile is not None and workers > 1:
            raise ValueError("cProfile sees the parent only: profile one worker")
        self.database_url = database_url
        self.workdir = workdir
        self.workers = workers
        self.port = procs.free_port()
        self.dialect = make_url(database_url).get_backend_name()
        # With `profile`, the server runs under cProfile (CPU clock) and writes its stats there.
        run = ([str(SOURCE / "bench" / "cpu_profile.py"), str(profile.resolve())] if profile
               else ["-m"])
        self._proc = procs.start(
            [sys.executable, *run, "zonehost", "zoneapi", "--listen", f"127.0.0.1:{self.port}",
             *(["--workers", str(workers)] if workers > 1 else [])],
            workdir / "zoneapi.log", env=zonehost_env(database_url, workdir, source), cwd=workdir)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def pids(self) -> list[int]:
        """The process started and every process below it (its workers)."""
        return procs.descendants(self._proc.pid)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    async def __aenter__(self) -> Self:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with aiohttp.ClientSession() as http:
            while True:
                if self._proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("zonehost zoneapi exited:\n" + self.log_tail())
                try:
                    async with http.get(f"{self.base_url}/openapi.json") as response:
                        # Each worker writes its line once it listens.
                        if response.status == 200 and (self.workers == 1 or self.log_tail(
                                None).count("(worker ") >= self.workers):
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("zonehost zoneapi did not start:\n" + self.log_tail())
                await asyncio.sleep(0.1)

    async def __aexit__(self, *exc: object
                        ) -> None:
        self.stop()

    def stop(self) -> None:
        procs.stop(self._proc)

    def log_tail(self, chars: int | None = 3000) -> str:
        try:
            text = (self.workdir / "zoneapi.log").read_text()
        except OSError:
            return ""
        return text if chars is None else text[-chars:]


class NameServer:
    """`zonehost nameserver` on a free port (UDP and TCP), until stopped."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = procs.free_port()
        self.workdir = workdir
        self._proc = procs.start(
            [sys.executable, "-m", "zonehost", "nameserver", "--listen",
             f"127.0.0.1:{self.port}"],
            workdir / "nameserver.log", env=zonehost_env(database_url, workdir), cwd=workdir)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait_serving(self, origins: list[str]) -> None:
        alive = lambda: self._proc.poll() is None
        if probe.wait_all_zones(self.port, origins, START_TIMEOUT_S, alive) is not None:
            return
        self.stop()
        raise RuntimeError("zonehost nameserver did not serve the zones:\n"
                           + (self.workdir / "nameserver.log").read_text()[-3000:])

    def stop(self) -> None:
        procs.stop(self._proc)
