"""`zonehost zoneapi --listen HOST:PORT` serves the API from the command line."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiohttp

from tests.conftest import free_port


async def test_zoneapi_command_serves_and_stops(cli_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    env = {**cli_env, "ZONEHOST_ZONEAPI_SECRET_KEY_FILE": str(tmp_path / "zoneapi.key")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zonehost", "zoneapi", "--listen", f"127.0.0.1:{port}", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                assert proc.returncode is None, "zonehost zoneapi exited early"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as reply:
                        assert reply.status == 200
                        assert (await reply.json()) == {"status": "ok"}
                        break
                except aiohttp.ClientConnectionError:
                    assert time.monotonic() < deadline, "the API did not answer within 30 s"
                    await asyncio.sleep(0.2)
            async with http.post(f"http://127.0.0.1:{port}/api/v1/auth/login",
                                 json={"login": "nobody", "password": "x" * 12}) as reply:
                assert reply.status == 401
        assert (tmp_path / "zoneapi.key").stat().st_mode & 0o077 == 0
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, out.decode()
