"""NSD as an oracle for master files: it loads our export, and reading NSD's
own print of the zone back gives the same data (skipped without nsd-checkzone,
Debian package nsd)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from storage.dnsdata.masterfile import from_text, to_text
from storage.dnsdata.names import zone_origin

ORIGIN = zone_origin("example.com")

NSD_CHECKZONE = shutil.which("nsd-checkzone") or (
    "/usr/sbin/nsd-checkzone" if Path("/usr/sbin/nsd-checkzone").exists() else None
)
pytestmark = pytest.mark.skipif(NSD_CHECKZONE is None, reason="nsd-checkzone is not installed")


def nsd_print(path: Path) -> str:
    assert NSD_CHECKZONE is not None
    done = subprocess.run(
        [NSD_CHECKZONE, "-p", "example.com", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_nsd_reads_our_export_as_we_do(tmp_path: Path, round_trip_zone: str) -> None:
    ours = from_text(round_trip_zone, ORIGIN)
    exported = tmp_path / "example.com.zone"
    exported.write_text(to_text(ours), encoding="utf-8")
    printed = nsd_print(exported)
    assert "zone example.com is ok" in printed
    assert from_text(printed, ORIGIN) == ours


def test_nsd_refuses_what_we_refuse(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zone"
    bad.write_text("$ORIGIN example.com.\n$TTL 60\n@ SOA ns1 host 1 2 3 4 5\nwww A 1.2.3\n")
    assert NSD_CHECKZONE is not None
    done = subprocess.run(
        [NSD_CHECKZONE, "example.com", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0
    assert ":4:" in done.stdout + done.stderr  # NSD also blames line 4
