"""Kill -9 the forwarder process after the 250s, restart it: nothing accepted is lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from storage.db import Database
from tests.conftest import REPO_ROOT, free_port
from tests.e2e.mx_support import SRS_KEY, Sink, add_alias, add_zone, send, wait_until

COUNT = 40


@contextmanager
def forwarder_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zonehost", "mx-forwarder", "--listen", f"127.0.0.1:{port}"],
        env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_listening(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
    assert b"listening" in line, line


async def test_sigkill_after_accept_loses_nothing(db: Database, cli_env: dict[str, str],
                                                  tmp_path: os.PathLike[str]) -> None:
    await add_zone(db, "hosted.test")
    await add_alias(db, "contact@hosted.test", "me@dest.test", "you@dest.test")
    sink = await Sink().start()
    env = dict(cli_env)
    env.update({
        "ZONEHOST_MX_FORWARDER_SRS_KEYS": SRS_KEY.decode(),
        "ZONEHOST_MX_FORWARDER_HOSTNAME": "mx.zonehost.test",
        "ZONEHOST_MX_FORWARDER_TRANSPORT": f"dest.test=127.0.0.1:{sink.port}",
        "ZONEHOST_MX_FORWARDER_RESOLVER": "127.0.0.1:9",
        "ZONEHOST_MX_FORWARDER_AUTH_RESULTS": "false",
        # the default lease (300 s): the restarted process (same host and port)
        # must take back its predecessor's leases at once, not wait them out
        "ZONEHOST_MX_FORWARDER_RETRY_BASE": "0.2",
        "ZONEHOST_MX_FORWARDER_POLL_INTERVAL": "0.1",
        "ZONEHOST_MX_FORWARDER_DELIVERY_CONCURRENCY": "1",
        "ZONEHOST_MX_FORWARDER_SPOOL_DIR": str(tmp_path) + "/spool",
        "ZONEHOST_MX_FORWARDER_SPOOL_THRESHOLD_BYTES": "3000",  # some go to files
    })
    port = free_port()
    try:
        with forwarder_process(env, port) as proc:
            await wait_listening(proc)

            async def one(i: int) -> None:
                body = (b"x" * 70 + b"\r\n") * (70 if i % 3 == 0 else 1)
                await send(port, "alice@sender.test", ["contact@hosted.test"],
                           f"Subject: crash {i}\r\nX-Seq: {i}\r\n\r\n".encode() + body)

            await asyncio.gather(*(one(i) for i in range(COUNT)))
            proc.send_signal(signal.SIGKILL)  # right after the last 250
            proc.wait(10)
        before = len(sink.messages)
        assert before < 2 * COUNT  # the kill did interrupt delivery
        with forwarder_process(env, port) as proc:
            await wait_listening(proc)
            await sink.wait_for(2 * COUNT, timeout_s=60)

            async def settled() -> bool:
                await asyncio.sleep(0.5)  # leave time for any extra delivery to show up
                return True

            await wait_until(settled)
    finally:
        await sink.close()
    seen = Counter(
        (rcpt, next(line for line in m.data.split(b"\r\n") if line.startswith(b"X-Seq:")))
        for m in sink.messages for rcpt in m.rcpt_tos
    )
    expected = {(r, f"X-Seq: {i}".encode()) for i in range(COUNT)
                for r in ("me@dest.test", "you@dest.test")}
    assert set(seen) == expected  # every accepted message reached each target
    duplicates = sum(n - 1 for n in seen.values())
    assert duplicates <= 1  # at most the one delivery in flight at the kill
    # At most the body whose unlink the kill cut short (its row was already gone):
    # the next start's sweep removes it once it is an hour old.
    assert len(list((tmp_path / "spool").glob("*.eml"))) <= 1  # type: ignore[operator]
