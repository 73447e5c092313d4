"""Run `zonehost nameserver` as a real subprocess against a test store."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.message
import dns.query
import dns.rcode

from tests.conftest import free_port


def query(port: int, qname: str, qtype: str = "A", timeout_s: float = 1.0) -> dns.message.Message:
    return dns.query.udp(
        dns.message.make_query(qname, qtype), "127.0.0.1", port=port, timeout=timeout_s
    )


@contextmanager
def running_nameserver(env: dict[str, str], probe: str, *extra: str) -> Iterator[int]:
    """Start `zonehost nameserver` on a free port; yield the port once `probe`
    (a hosted name) answers, stop it afterwards."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zonehost", "nameserver", "--listen", f"127.0.0.1:{port}", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read() if proc.stdout else ""
                raise RuntimeError(f"nameserver exited with {proc.returncode}:\n{out}")
            try:
                if query(port, probe, "SOA", 0.2).rcode() != dns.rcode.SERVFAIL:
                    break
            except (dns.exception.Timeout, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("nameserver did not answer within 90 s")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
