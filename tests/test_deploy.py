"""deploy/ cannot rot: the example configuration names every setting the code
reads with its real default and builds every service's config; the env file
holds known settings; the systemd units run real commands; the NSD and Knot
secondary configurations pass their own checkers.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from storage import zones as store
from storage.db import Database, connect
from storage.dnsdata import masterfile, zone_origin
from storage.models.core import ZoneStatus
from storage.zones import OPERATOR
from zonehost.cli import build_parser
from zonehost.config import (
    Settings,
    _flatten,
    billing_config,
    feed_options,
    forwarder_config,
    nameserver_options,
    parse_hostport,
    zoneapi_config,
)
from zonehost.dns_service import transfer_config
from zonehost.serve import ServeOptions

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
EXAMPLE = DEPLOY / "zonehost.toml.example"
ENV_EXAMPLE = DEPLOY / "env.example"
SYSTEMD = DEPLOY / "systemd"
SECONDARIES = DEPLOY / "secondaries"
PACKAGES = ["storage", "nameserver", "zoneapi", "mx_forwarder", "billing", "zonehost"]
METHODS = ("str", "optional_str", "int", "float", "bool", "list", "has")

# `# key = value`: a setting that is unset by default, with an example value.
COMMENTED = re.compile(r"^# ?([a-z][a-z0-9_]*) = (.+)$")
TABLE = re.compile(r"^\[([a-z0-9_.]+)\]\s*$")


class RecordingSettings(Settings):
    """Settings that remember each key read and the default the code gave."""

    def __init__(self, file_values: Mapping[str, Any], env: Mapping[str, str]) -> None:
        super().__init__(file_values, env)
        self.read: dict[builtins.str, tuple[Any, ...]] = {}

    def _note(self, key: builtins.str, *default: Any) -> None:
        self.read.setdefault(key, default)

    def str(self, key: builtins.str, default: builtins.str) -> builtins.str:
        self._note(key, default)
        return super().str(key, default)

    def optional_str(self, key: builtins.str) -> builtins.str | None:
        self._note(key)
        return super().optional_str(key)

    def int(self, key: builtins.str, default: builtins.int) -> builtins.int:
        self._note(key, default)
        return super().int(key, default)

    def float(self, key: builtins.str, default: builtins.float) -> builtins.float:
        self._note(key, default)
        return super().float(key, default)

    def bool(self, key: builtins.str, default: builtins.bool) -> builtins.bool:
        self._note(key, default)
        return super().bool(key, default)

    def list(
        self, key: builtins.str, default: builtins.list[builtins.str]
    ) -> builtins.list[builtins.str]:
        self._note(key, builtins.list(default))
        return super().list(key, default)

    def has(self, key: builtins.str) -> builtins.bool:
        self._note(key)
        return super().has(key)


def build_everything(settings: Settings) -> None:
    """Every config the services and the CLI build from settings."""
    billing_config(settings)
    nameserver_options(settings)
    feed_options(settings)
    transfer_config(settings)
    zoneapi_config(settings)
    forwarder_config(settings)
    ServeOptions.from_settings(settings, dns=None, http=None, smtp=None, metrics=None, demo=True)
    connect(settings.database_url)  # the URL parses and names a supported driver
    # What `zonehost nameserver` and `zonehost mx-forwarder` read themselves.
    for address in settings.list("nameserver_listen", ["127.0.0.1:5300"]):
        parse_hostport(address, 53)
    assert settings.int("nameserver_workers", 1) >= 1
    for key in ("nameserver_metrics", "mx_forwarder_metrics"):
        value = settings.optional_str(key)
        if value:
            parse_hostport(value, 9153)


def example_text() -> str:
    return EXAMPLE.read_text()


def commented_settings(text: str) -> dict[str, Any]:
    """The `# key = value` lines, by flattened name, with their TOML values."""
    found: dict[str, Any] = {}
    prefix = ""
    for line in text.splitlines():
        table = TABLE.match(line)
        if table:
            prefix = table.group(1).replace(".", "_") + "_"
            continue
        match = COMMENTED.match(line)
        if match:
            key = prefix + match.group(1)
            assert key not in found, f"{key} is documented twice"
            found[key] = tomllib.loads(f"v = {match.group(2)}")["v"]
    return found


def uncommented(text: str) -> str:
    """The example with every optional setting turned on at its example value."""
    return "\n".join(
        line.lstrip("#").lstrip() if COMMENTED.match(line) else line for line in text.splitlines()
    )


def active_settings() -> dict[str, Any]:
    return _flatten(tomllib.loads(example_text()))


def static_reads() -> dict[str, tuple[Any, ...]]:
    """`settings.<method>("key", default)` calls with a literal key, anywhere in the code."""
    found: dict[str, tuple[Any, ...]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in METHODS
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("settings", "s")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    continue
                default: tuple[Any, ...] = ()
                if len(node.args) > 1:
                    try:
                        default = (ast.literal_eval(node.args[1]),)
                    except ValueError:  # computed: the dynamic reading knows it
                        default = ()
                found.setdefault(node.args[0].value, default)
    return found


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Key files that the defaults create (var/...) land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


@pytest.fixture
def reads(in_tmp: Path) -> dict[str, tuple[Any, ...]]:
    """Every key the code reads, given the example as it is and fully uncommented."""
    keys = dict(static_reads())
    for text in (example_text(), uncommented(example_text())):
        settings = RecordingSettings(tomllib.loads(text), {})
        build_everything(settings)
        for key, default in settings.read.items():
            keys[key] = default or keys.get(key, ())
    return keys


def test_example_builds_every_service_config(in_tmp: Path) -> None:
    settings = Settings(tomllib.loads(example_text()), {})
    build_everything(settings)
    assert nameserver_options(settings).udp_payload == 1232
    assert (in_tmp / "var" / "zoneapi.key").exists()  # the documented key file
    assert (in_tmp / "var" / "srs.key").exists()


def test_example_with_every_optional_setting_builds(in_tmp: Path) -> None:
    settings = Settings(tomllib.loads(uncommented(example_text())), {})
    build_everything(settings)
    Fernet(zoneapi_config(settings).secret_key)  # a real Fernet key
    xfr = transfer_config(settings)
    assert xfr.notify_key is not None and len(xfr.keyring) == 1
    assert forwarder_config(settings).spool_dir is not None
    assert billing_config(settings).provider is not None
    assert zoneapi_config(settings).sms is not None


def test_example_names_every_setting_and_only_real_ones(reads: dict[str, tuple[Any, ...]]) -> None:
    documented = set(active_settings()) | set(commented_settings(example_text()))
    missing = sorted(set(reads) - documented)
    unknown = sorted(documented - set(reads))
    assert not missing and not unknown, (
        f"deploy/zonehost.toml.example omits settings the code reads: {missing}; "
        f"names settings that nothing reads: {unknown}"
    )


def _same(example: Any, default: Any) -> bool:
    if isinstance(default, builtins.bool) or isinstance(example, builtins.bool):
        return example is default
    number = (builtins.int, builtins.float)
    if isinstance(default, number) and isinstance(example, number):
        return builtins.float(example) == builtins.float(default)
    return bool(example == default)


def test_example_active_values_are_the_defaults(reads: dict[str, tuple[Any, ...]]) -> None:
    wrong = [
        f"{key} = {value!r} (the code's default: {reads[key][0]!r})"
        for key, value in active_settings().items()
        if reads.get(key) and not _same(value, reads[key][0])
    ]
    assert not wrong, "deploy/zonehost.toml.example: " + "; ".join(wrong)
    unchecked = sorted(k for k in active_settings() if not reads.get(k))
    assert not unchecked, f"active settings without a default in the code: {unchecked}"


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and name.isupper(), f"env.example: not NAME=value: {line!r}"
            values[name] = value
    return values


def test_env_example_sets_known_settings_and_wins(in_tmp: Path) -> None:
    env = env_example()
    documented = set(active_settings()) | set(commented_settings(example_text()))
    for name in env:
        assert name.startswith("ZONEHOST_"), name
        assert name[len("ZONEHOST_"):].lower() in documented, f"env.example: unknown setting {name}"
    for line in ENV_EXAMPLE.read_text().splitlines():  # the commented ones too
        match = re.match(r"^# (ZONEHOST_[A-Z0-9_]+)=", line)
        if match:
            assert match.group(1)[len("ZONEHOST_"):].lower() in documented, match.group(1)
    settings = Settings(tomllib.loads(example_text()), env)
    build_everything(settings)
    assert settings.database_url == env["ZONEHOST_DATABASE_URL"]
    assert connect(settings.database_url).is_postgres
    Fernet(zoneapi_config(settings).secret_key)
    assert len(transfer_config(settings).keyring) == 1
    assert not (in_tmp / "var" / "zoneapi.key").exists()  # the env's key was used


# -- systemd units ------------------------------------------------------------

LONG_RUNNING = {
    "zonehost-nameserver.service": ["nameserver"],
    "zonehost-api.service": ["zoneapi"],
    "zonehost-mx-forwarder.service": ["mx-forwarder"],
    "zonehost.service": ["serve", "--no-demo"],
}
PRIVILEGED_PORTS = {
    "zonehost-nameserver.service", "zonehost-mx-forwarder.service", "zonehost.service",
}
ZONEHOST_BIN = "/opt/zonehost/bin/zonehost"


def unit(name: str) -> dict[str, list[str]]:
    """`Key=value` lines of a unit file (a key may repeat)."""
    values: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def zonehost_argv(exec_start: str) -> list[str]:
    """The zonehost arguments of an ExecStart=, through `/bin/sh -c '...'` if need be."""
    argv = shlex.split(exec_start.replace("%%", "%").replace("$$", "$"))  # systemd's escapes
    if argv[:2] == ["/bin/sh", "-c"]:
        inner = argv[2].replace("$(date -u +%F)", date.today().isoformat())
        argv = shlex.split(inner)
        if argv[0] == "exec":
            argv = argv[1:]
    assert argv[0] == ZONEHOST_BIN, exec_start
    return argv[1:]


@pytest.mark.parametrize("name", sorted(LONG_RUNNING) + ["zonehost-billing.service"])
def test_unit_runs_a_real_command_hardened(name: str) -> None:
    values = unit(name)
    argv = zonehost_argv(values["ExecStart"][0])
    args = build_parser().parse_args(argv)  # exits (SystemExit) on a command that is gone
    assert callable(args.func)
    if name == "zonehost-billing.service":
        assert argv[:2] == ["billing", "run"] and args.date == date.today()
        assert values["Type"] == ["oneshot"]
    else:
        assert argv == LONG_RUNNING[name]
        assert values["Restart"] == ["on-failure"]
    assert values["User"] == ["zonehost"] and values["StateDirectory"] == ["zonehost"]
    assert values["WorkingDirectory"] == ["/var/lib/zonehost"]
    assert values["EnvironmentFile"] == ["-/etc/zonehost/env"]
    assert "ZONEHOST_CONFIG=/etc/zonehost/zonehost.toml" in values["Environment"][0].split()
    for key, value in [("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"), ("UMask", "0077")]:
        assert values.get(key) == [value], f"{name}: {key}"
    if name in PRIVILEGED_PORTS:
        assert values["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
        assert values["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    else:
        assert "AmbientCapabilities" not in values
        assert values["CapabilityBoundingSet"] == [""]


def test_billing_timer_runs_daily() -> None:
    values = unit("zonehost-billing.timer")
    assert values["OnCalendar"] == ["*-*-* 00:10:00 UTC"] and values["Persistent"] == ["true"]
    assert (SYSTEMD / "zonehost-billing.service").exists()  # the timer's unit, by name


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    real = shutil.which("zonehost", path=str(Path(sys.executable).parent)) or sys.executable
    names = sorted(p.name for p in SYSTEMD.iterdir() if p.suffix in (".service", ".timer"))
    for name in names:
        text = (SYSTEMD / name).read_text().replace(ZONEHOST_BIN, real)
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names], cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0 and not report.strip(), report


# -- NSD and Knot secondaries -------------------------------------------------

ZONE = """$TTL 3600
@ IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 3600
@ IN NS ns1.example.com.
ns1 IN A 192.0.2.1
"""


async def _store_with_zones(url: str) -> None:
    db: Database = connect(url)
    try:
        async with db.write() as session:
            for origin in ("example.com", "example.net", "suspended.example"):
                await store.replace_zone(
                    session, masterfile.from_text(ZONE, zone_origin(origin)), OPERATOR
                )
        async with db.write() as session:
            await store.set_zone_status(
                session, "suspended.example.", ZoneStatus.SUSPENDED, OPERATOR
            )
    finally:
        await db.close()


@pytest.fixture
def zone_list(database_url: str, cli_env: dict[str, str]) -> str:
    """Real `zonehost zone list` output: two active zones and a suspended one."""
    asyncio.run(_store_with_zones(database_url))
    result = subprocess.run(
        [sys.executable, "-m", "zonehost", "zone", "list"], env=cli_env, capture_output=True,
        text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _entries(kind: str, zone_list: str) -> str:
    result = subprocess.run(
        ["sh", str(SECONDARIES / "zone-entries"), kind], input=zone_list, capture_output=True,
        text=True, timeout=30, check=True,
    )
    return result.stdout


def test_knot_secondary_config_checks(tmp_path: Path, zone_list: str) -> None:
    knotc = shutil.which("knotc") or shutil.which("/usr/sbin/knotc")
    if knotc is None:
        pytest.skip("knotc is not installed (Debian package: knot)")
    (tmp_path / "zones.conf").write_text(_entries("knot", zone_list))
    conf = tmp_path / "knot.conf"
    conf.write_text(
        (SECONDARIES / "knot.conf").read_text().replace(
            "/etc/knot/zonehost-zones.conf", str(tmp_path / "zones.conf"))
    )
    result = subprocess.run([knotc, "-c", str(conf), "conf-check"], capture_output=True,
                            text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    zones = re.findall(r'domain: "([^"]+)"', (tmp_path / "zones.conf").read_text())
    assert zones == ["example.com", "example.net"]


def test_nsd_secondary_config_checks(tmp_path: Path, zone_list: str) -> None:
    checkconf = shutil.which("nsd-checkconf") or shutil.which("/usr/sbin/nsd-checkconf")
    if checkconf is None:
        pytest.skip("nsd-checkconf is not installed (Debian package: nsd)")
    (tmp_path / "zones.conf").write_text(_entries("nsd", zone_list))
    conf = tmp_path / "nsd.conf"
    conf.write_text(
        (SECONDARIES / "nsd.conf").read_text().replace(
            "/etc/nsd/zonehost-zones.conf", str(tmp_path / "zones.conf"))
    )
    result = subprocess.run([checkconf, str(conf)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    zones = subprocess.run([checkconf, "-o", "zones", str(conf)], capture_output=True,
                           text=True, timeout=30, check=True).stdout.split()
    assert zones == ["example.com", "example.net"]
    xfr = subprocess.run([checkconf, "-z", "example.com", "-o", "request-xfr", str(conf)],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert xfr.split() == ["192.0.2.10", "transfer-key"]


def test_secondary_keys_match_the_example_tsig_key() -> None:
    """The same key name, algorithm and secret on both sides of the transfer."""
    name, algorithm, secret = env_example()["ZONEHOST_TSIG_KEYS"].split(":")
    assert commented_settings(example_text())["tsig_keys"] == [f"{name}:{algorithm}:{secret}"]
    knot = (SECONDARIES / "knot.conf").read_text()
    for line in (f"id: {name}", f"algorithm: {algorithm}", f"secret: {secret}"):
        assert line in knot, f"knot.conf: {line}"
    nsd = (SECONDARIES / "nsd.conf").read_text()
    for line in (f'name: "{name}"', f"algorithm: {algorithm}", f'secret: "{secret}"'):
        assert line in nsd, f"nsd.conf: {line}"


# -- PostgreSQL roles (deploy/postgresql/*.sql), when a server is configured ----

PG_SQL = DEPLOY / "postgresql"


def _psql(base: Any, *args: str) -> subprocess.CompletedProcess[str]:
    psql = shutil.which("psql")
    assert psql is not None
    command = [psql, "-X", "-v", "ON_ERROR_STOP=1", "-h", base.host or "127.0.0.1",
               "-p", str(base.port or 5432), "-U", base.username or "postgres", *args]
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": base.password or ""}
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False,
                          env=env)


@pytest.fixture
def pg_roles() -> Iterator[dict[str, str]]:
    """roles.sql run with unique names; the database and roles dropped afterwards."""
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL

    if not PG_URL:
        pytest.skip("needs ZONEHOST_TEST_DATABASE_URL (a PostgreSQL superuser URL)")
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (Debian package: postgresql-client)")
    base = make_url(PG_URL)
    tag = uuid.uuid4().hex[:10]
    names = {role: f"zh_{role}_{tag}" for role in ("db", "owner", "app", "ns", "ro")}
    variables = [arg for role, name in names.items() for arg in ("-v", f"{role}={name}")]
    created = _psql(base, "-d", "postgres", *variables, "-f", str(PG_SQL / "roles.sql"))
    try:
        assert created.returncode == 0, created.stderr
        urls = {
            role: base.set(drivername="postgresql+asyncpg", username=names[role],
                           database=names["db"]).render_as_string(hide_password=False)
            for role in ("owner", "app", "ns", "ro")
        }
        yield {"db": names["db"], "ns_role": names["ns"], **urls}
    finally:
        _psql(base, "-d", "postgres", "-c", f'DROP DATABASE IF EXISTS "{names["db"]}" WITH (FORCE)')
        for role in ("app", "ns", "ro", "owner"):
            _psql(base, "-d", "postgres", "-c", f'DROP ROLE IF EXISTS "{names[role]}"')


async def _denied(db: Database, statement: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as caught:
        async with db.write() as session:
            await session.execute(text(statement))
    return str(caught.value.orig)


def test_postgresql_roles_give_each_service_what_it_needs(
    pg_roles: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.engine import make_url

    from tests.conftest import PG_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZONEHOST_")}
    upgraded = subprocess.run(
        [sys.executable, "-m", "zonehost", "db", "upgrade"],
        env={**env, "ZONEHOST_DATABASE_URL": pg_roles["owner"]},
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert PG_URL is not None
    granted = _psql(make_url(PG_URL), "-d", pg_roles["db"], "-v", f"ns={pg_roles['ns_role']}",
                    "-f", str(PG_SQL / "grants.sql"))
    assert granted.returncode == 0, granted.stderr
    asyncio.run(_exercise_roles(pg_roles))
    problems = [r.getMessage() for r in caplog.records if r.levelname in ("WARNING", "ERROR")
                and r.name.startswith("nameserver")]
    assert not problems, problems


async def _reported(db: Database, instance: str, timeout_s: float = 20.0) -> None:
    from storage.models.nameserver import NameserverInstance

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        async with db.read() as session:
            row = await session.get(NameserverInstance, instance)
        if row is not None:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{instance} never reported"
        await asyncio.sleep(0.05)


async def _exercise_roles(urls: dict[str, str]) -> None:
    import dns.asyncquery
    import dns.message

    from billing.job import run_daily
    from storage import nsstatus
    from storage.snapshot import load_zones
    from tests.conftest import free_port
    from zonehost.dns_service import start_dns

    app, ns, ro = connect(urls["app"]), connect(urls["ns"]), connect(urls["ro"])
    try:
        # app: zones, the billing job, no schema changes.
        async with app.write() as session:
            await store.replace_zone(
                session, masterfile.from_text(ZONE, zone_origin("example.com")), OPERATOR
            )
        await run_daily(billing_config(Settings({}, {})), app, date.today())
        assert "permission denied" in await _denied(app, "CREATE TABLE intruder (i int)")
        # ns: serves, reports its position, and may not edit zones.
        port = free_port()
        settings = Settings({}, {"ZONEHOST_NAMESERVER_INSTANCE": "deploy-test"})
        service = await start_dns(settings, ns, [("127.0.0.1", port)])
        try:
            query = dns.message.make_query("ns1.example.com.", "A")
            reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)
            assert [r.to_text() for rr in reply.answer for r in rr] == ["192.0.2.1"]
            await _reported(ns, "deploy-test")  # the heartbeat's write went through
        finally:
            await service.close()
        assert "permission denied" in await _denied(ns, "DELETE FROM zones")
        # ro: reads everything a nameserver loads, writes nothing.
        async with ro.read() as session:
            assert [z.origin for z in await load_zones(session)] == ["example.com."]
        with pytest.raises(Exception, match="permission denied"):
            async with ro.write() as session:
                await nsstatus.report_applied(session, "replica", 1)
    finally:
        for db in (app, ns, ro):
            await db.close()


# -- the documents -------------------------------------------------------------

COMMAND = re.compile(
    r"\bzonehost ((?:db|zone|nameserver|zoneapi|mx-forwarder|mail|account|billing|orders|serve)"
    r"\b[^|>#`'\"\n]*)"
)


def test_every_zonehost_command_in_deploy_parses() -> None:
    """Each `zonehost ...` the documents and units show is a command the CLI has."""
    seen = []
    for path in sorted(DEPLOY.rglob("*")):
        if not path.is_file() or path.suffix not in (".md", ".service", ".timer", ".sql", ""):
            continue
        text = re.sub(r"(?m)^Description=.*$", "", path.read_text())  # prose, not commands
        text = text.replace('"$$(date -u +%%F)"', date.today().isoformat())
        for match in COMMAND.finditer(text):
            argv = shlex.split(match.group(1).replace("\\\n", " "))
            try:
                build_parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"{path.relative_to(ROOT)}: `zonehost {match.group(1)}` does not parse")
            seen.append(argv[0])
    assert {"db", "zone", "serve", "zoneapi", "nameserver", "mx-forwarder"} <= set(seen)


def test_deploy_documents_link_to_files_that_exist() -> None:
    for doc in DEPLOY.glob("*.md"):
        for target in re.findall(r"\]\(([^)#:]+)\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"
        for target in re.findall(r"deploy/[\w./-]+[\w]", doc.read_text()):
            assert (ROOT / target).exists() or "*" in target, f"{doc.name}: no file {target}"
