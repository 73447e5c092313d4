"""`zonehost serve` on a fresh store: schema created, demo zone loaded, every
service answering on its port."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dns.rcode

from tests.conftest import free_port
from tests.e2e.nameserver_process import query


def test_serve_runs_every_service_with_the_demo_zone(tmp_path: Path) -> None:
    dns_port, http_port, smtp_port, metrics_port = (free_port() for _ in range(4))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zonehost", "serve", "--dns", f"127.0.0.1:{dns_port}",
         "--http", f"127.0.0.1:{http_port}", "--smtp", f"127.0.0.1:{smtp_port}",
         "--metrics", f"127.0.0.1:{metrics_port}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/v1/openapi.json", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        assert (tmp_path / "var" / "zonehost.sqlite3").exists()

        www = query(dns_port, "www.demo.test.", "A")
        assert www.rcode() == dns.rcode.NOERROR
        assert {r.to_text() for r in www.answer[0]} == {"192.0.2.80"}
        assert query(dns_port, "nope.example.", "A").rcode() == dns.rcode.REFUSED

        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/v1/openapi.json") as reply:
            assert json.load(reply)["openapi"].startswith("3.1")
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as smtp:
            code, _ = smtp.ehlo("client.example")
            assert code == 250 and smtp.has_extn("pipelining")
            code, _ = smtp.mail("sender@example.org")
            assert code == 250
            code, _ = smtp.rcpt("someone@not-hosted.example")
            assert code == 550
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as reply:
            assert b"zonehost_dns_queries" in reply.read()
    finally:
        proc.terminate()
        try:
            assert proc.wait(20) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
