"""`zonehost zoneapi --workers 2`: two processes on one port, one set of rate limits."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.conftest import free_port

START_TIMEOUT_S = 60.0
BURST = 20


@dataclass
class Api:
    proc: asyncio.subprocess.Process
    port: int
    pids: dict[int, int]  # worker number -> pid, from its "zone API on ... (worker N, pid P)"

    @property
    def workers(self) -> list[int]:
        return list(self.pids.values())
    output: list[str]


@asynccontextmanager
async def zoneapi(env: dict[str, str], *args: str, workers: int = 2) -> AsyncIterator[Api]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "zonehost", "zoneapi", "--listen", f"127.0.0.1:{port}",
        "--workers", str(workers), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    api = Api(proc, port, {}, [])
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(api.workers) < workers:  # every worker says when it listens
            try:
                line = await asyncio.wait_for(proc.stdout.readline(),
                                              deadline - time.monotonic())
            except TimeoutError:
                raise AssertionError("zonehost zoneapi did not start:\n"
                                     + "".join(api.output)) from None
            assert line, "zonehost zoneapi exited early:\n" + "".join(api.output)
            api.output.append(line.decode())
            for found in re.finditer(r"\(worker (\d+), pid (\d+)\)", line.decode()):
                api.pids[int(found[1])] = int(found[2])
        yield api
    finally:
        if proc.returncode is None:
            proc.kill()  # a test that failed early: its workers follow (parent-death signal)
            await proc.wait()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry))
    return found


def _established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port and fields[3] == "01":
            inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


async def _wait_exit(api: Api) -> str:
    assert api.proc.stdout is not None
    out = []
    try:
        async with asyncio.timeout(30):
            while line := await api.proc.stdout.readline():
                out.append(line.decode())
            await api.proc.wait()
    except TimeoutError:
        raise AssertionError(f"zonehost zoneapi did not stop (workers {api.pids}, alive "
                             f"{sorted(_children(api.proc.pid))}):\n"
                             + "".join(api.output + out)) from None
    return "".join(out)


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
                return False
        except OSError:
            continue
    return True


async def test_two_workers_share_the_port_and_the_address_limit(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "ZONEHOST_ZONEAPI_SECRET_KEY_FILE": str(tmp_path / "zoneapi.key"),
           "ZONEHOST_ZONEAPI_RATE_BURST_PER_ADDRESS": str(BURST),
           "ZONEHOST_ZONEAPI_RATE_PER_ADDRESS": "0.01"}
    metrics_port = free_port()
    async with zoneapi(env, "--metrics", f"127.0.0.1:{metrics_port}") as api:
        assert set(api.workers) == _children(api.proc.pid)
        assert len(set(api.workers)) == 2
        url = f"http://127.0.0.1:{api.port}/api/v1/health"

        # 60 requests, each on a new connection: SO_REUSEPORT spreads them over
        # both workers, whose buckets would each allow BURST.
        statuses: list[int] = []
        retry_after: list[str] = []
        for _ in range(60):
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(force_close=True)
            ) as http, http.get(url) as reply:
                statuses.append(reply.status)
                if reply.status == 429:
                    retry_after.append(reply.headers.get("Retry-After", ""))
        ok = statuses.count(200)
        assert BURST <= ok <= BURST + 2, statuses
        assert statuses.count(429) == 60 - ok
        assert all(value.isdigit() and int(value) >= 1 for value in retry_after)

        # Both workers answer: hold 24 connections open, one request answered
        # on each, and find each worker holding some of them.
        sockets = []
        loop = asyncio.get_running_loop()
        try:
            for _ in range(24):
                sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
                sockets.append(sock)
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: api\r\n\r\n")
            for sock in sockets:
                head = await loop.run_in_executor(None, sock.recv, 65536)
                assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 429")), head[:100]
            served = _established_inodes(api.port)
            held = {pid: _socket_inodes(pid) & served for pid in api.workers}
            assert sum(len(inodes) for inodes in held.values()) == 24, held
            assert all(held.values()), {pid: len(inodes) for pid, inodes in held.items()}
        finally:
            for sock in sockets:
                sock.close()

        # The metrics are the workers' sum.
        async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{metrics_port}/metrics"
        ) as reply:
            text = await reply.text()
        counted = sum(float(m[1]) for m in re.finditer(
            r'^zoneapi_requests_total\{[^}]*route="/api/v1/health"[^}]*\} (\S+)$', text, re.MULTILINE))
        assert counted == 60 + 24

        # SIGTERM stops every worker, and the service exits 0.
        api.proc.send_signal(signal.SIGTERM)
        out = await _wait_exit(api)
        assert api.proc.returncode == 0, "".join(api.output) + out
        assert _gone(api.workers)


async def test_a_dead_worker_stops_the_service(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "ZONEHOST_ZONEAPI_SECRET_KEY_FILE": str(tmp_path / "zoneapi.key")}
    async with zoneapi(env) as api:
        os.kill(api.pids[0], signal.SIGKILL)
        out = await _wait_exit(api)
        assert api.proc.returncode == 1, out
        assert f"worker 0 (pid {api.pids[0]}) exited with status -9" in out
        assert _gone(api.workers)


async def test_workers_must_be_at_least_one(cli_env: dict[str, str], tmp_path: Path) -> None:
    env = {**cli_env, "ZONEHOST_ZONEAPI_SECRET_KEY_FILE": str(tmp_path / "zoneapi.key")}
    for args, extra in ((["--workers", "0"], {}), ([], {"ZONEHOST_ZONEAPI_WORKERS": "0"})):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "zonehost", "zoneapi", *args, env={**env, **extra},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 1
        assert "must be at least 1" in out.decode()
