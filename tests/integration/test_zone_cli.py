"""`zonehost zone ...` and `zonehost db upgrade` as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dns.zone

from tests.conftest import REPO_ROOT

EVERY_TYPE = REPO_ROOT / "tests" / "data" / "every-type.example.zone"


def zonehost(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zonehost", *args], env=env, input=stdin, capture_output=True, check=False,
        text=True, timeout=120,
    )


def records(text: str, origin: str) -> set[tuple[str, str, int, str]]:
    """Every record but the SOA serial, as comparable tuples."""
    zone = dns.zone.from_text(text, origin, relativize=False, check_origin=False)
    out = set()
    for name, ttl_rdataset in zone.iterate_rdatasets():
        for rdata in ttl_rdataset:
            text_rdata = rdata.to_text()
            if ttl_rdataset.rdtype == 6:
                fields = text_rdata.split()
                fields[2] = "SERIAL"
                text_rdata = " ".join(fields)
            out.add((name.to_text().lower(), rdata.rdtype.name, ttl_rdataset.ttl, text_rdata))
    return out


def test_db_upgrade_is_idempotent(cli_env: dict[str, str]) -> None:
    for _ in range(2):
        result = zonehost(cli_env, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "schema at revision" in result.stdout


def test_import_export_round_trip_every_type(cli_env: dict[str, str], tmp_path: Path) -> None:
    imported = zonehost(cli_env, "zone", "import", "every-type.example", str(EVERY_TYPE))
    assert imported.returncode == 0, imported.stderr
    exported = zonehost(cli_env, "zone", "export", "every-type.example")
    assert exported.returncode == 0, exported.stderr
    original = records(EVERY_TYPE.read_text(), "every-type.example.")
    assert records(exported.stdout, "every-type.example.") == original
    # Export, import the export again: the same zone once more.
    again = tmp_path / "again.zone"
    again.write_text(exported.stdout)
    assert zonehost(cli_env, "zone", "import", "every-type.example", str(again)).returncode == 0
    second = zonehost(cli_env, "zone", "export", "every-type.example")
    assert records(second.stdout, "every-type.example.") == original
    # The serial went up: every import is a change.
    serials = [
        dns.zone.from_text(t, "every-type.example.", relativize=False).get_soa().serial
        for t in (exported.stdout, second.stdout)
    ]
    assert serials[1] > serials[0]


def test_bad_file_reports_each_line_and_changes_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert zonehost(cli_env, "zone", "import", "every-type.example", str(EVERY_TYPE)).returncode == 0
    before = zonehost(cli_env, "zone", "export", "every-type.example").stdout
    bad = tmp_path / "bad.zone"
    bad.write_text(
        "$ORIGIN every-type.example.\n$TTL 300\n"
        "@ IN SOA ns1 hostmaster 1 2 3 4 5\n"
        "www IN A 300.1.1.1\n"  # line 4
        "ok IN A 192.0.2.1\n"
        "mx IN MX ten mail\n"  # line 6
    )
    result = zonehost(cli_env, "zone", "import", "every-type.example", str(bad))
    assert result.returncode == 1
    assert "line 4" in result.stderr and "line 6" in result.stderr
    assert "Traceback" not in result.stderr
    assert zonehost(cli_env, "zone", "export", "every-type.example").stdout == before


def test_include_is_refused(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "include.zone"
    bad.write_text("$ORIGIN inc.example.\n$INCLUDE /etc/passwd\n@ IN SOA a b 1 2 3 4 5\n")
    result = zonehost(cli_env, "zone", "import", "inc.example", str(bad))
    assert result.returncode == 1
    assert "$INCLUDE" in result.stderr
    assert zonehost(cli_env, "zone", "list").stdout == ""


def test_import_dir_list_and_delete(cli_env: dict[str, str], tmp_path: Path) -> None:
    for origin in ("child.parent.example", "parent.example"):
        (tmp_path / f"{origin}.zone").write_text(
            f"$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 1800 86400 300\n"
            "@ IN NS ns1\nns1 IN A 192.0.2.1\n"
        )
    result = zonehost(cli_env, "zone", "import-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = zonehost(cli_env, "zone", "list").stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["child.parent.example.", "parent.example."]
    assert zonehost(cli_env, "zone", "delete", "child.parent.example").returncode == 0
    listed = zonehost(cli_env, "zone", "list").stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["parent.example."]


def test_import_dir_with_one_bad_file_imports_nothing(cli_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "good.example.zone").write_text("@ 300 IN SOA ns1 hm 1 2 3 4 5\n@ 300 IN NS ns1\n")
    (tmp_path / "bad.example.zone").write_text("@ 300 IN SOA ns1 hm 1 2 3 4 5\nx 300 IN AAAA 1.2.3.4\n")
    result = zonehost(cli_env, "zone", "import-dir", str(tmp_path))
    assert result.returncode == 1
    assert "bad.example.zone" in result.stderr and "line 2" in result.stderr
    assert zonehost(cli_env, "zone", "list").stdout == ""


def test_clear_errors_for_bad_input(cli_env: dict[str, str], tmp_path: Path) -> None:
    cases = [
        (("zone", "export", "missing.example"), "does not exist"),
        (("zone", "delete", "missing.example"), "does not exist"),
        (("zone", "import", "bad..origin", str(EVERY_TYPE)), "bad..origin"),
        (("zone", "import", "unreadable.example", str(tmp_path / "nope.zone")), "cannot read"),
        (("zone", "export", "x" * 300 + ".example"), "x" * 20),
    ]
    for args, message in cases:
        result = zonehost(cli_env, *args)
        assert result.returncode == 1, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_clear_message(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ZONEHOST_DATABASE_URL": "postgresql+asyncpg://nobody@127.0.0.1:1/none"}
    result = zonehost(env, "zone", "list")
    assert result.returncode == 1
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_required_before_import(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ZONEHOST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/new.db"}
    result = zonehost(env, "zone", "list")
    assert result.returncode == 1
    assert "zonehost db upgrade" in result.stderr
