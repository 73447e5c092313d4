"""`zonehost zone ...`: master-file import and export, list, delete."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import dns.name

from storage import zones as store
from storage.db import Database
from storage.dnsdata import DnsDataError, ZoneContent, masterfile, zone_origin
from storage.zones import OPERATOR, ZoneStoreError
from zonehost.config import Settings
from zonehost.errors import CommandError
from zonehost.runtime import run_with_database

MAX_FILE_BYTES = 512 * 1024 * 1024


def register(sub: Any) -> None:
    zone = sub.add_parser("zone", help="zones and master files").add_subparsers(
        dest="zone_command", required=True, metavar="ACTION"
    )
    p = zone.add_parser("import", help="load a master file as zone ORIGIN (replaces its records)")
    p.add_argument("origin")
    p.add_argument("file", help="RFC 1035 master file ('-' for standard input)")
    p.set_defaults(func=cmd_import)
    p = zone.add_parser("import-dir", help="import every <origin>.zone file of a folder")
    p.add_argument("directory")
    p.set_defaults(func=cmd_import_dir)
    p = zone.add_parser("export", help="print zone ORIGIN as a master file")
    p.add_argument("origin")
    p.set_defaults(func=cmd_export)
    p = zone.add_parser("list", help="list the zones")
    p.set_defaults(func=cmd_list)
    p = zone.add_parser("delete", help="delete zone ORIGIN and all its records")
    p.add_argument("origin")
    p.set_defaults(func=cmd_delete)


def _origin(text: str) -> dns.name.Name:
    try:
        return zone_origin(text)
    except DnsDataError as exc:
        raise CommandError(str(exc)) from exc


def _read(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        file = Path(path)
        if file.stat().st_size > MAX_FILE_BYTES:
            raise CommandError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CommandError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def _parse(origin: dns.name.Name, path: str) -> ZoneContent:
    try:
        return masterfile.from_text(_read(path), origin)
    except DnsDataError as exc:
        raise CommandError(f"{path}: the zone was not changed:\n{exc}") from exc


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    origin = _origin(args.origin)
    content = _parse(origin, args.file)

    async def work(db: Database) -> store.WriteResult:
        try:
            async with db.write() as session:
                return await store.replace_zone(session, content, OPERATOR)
        except ZoneStoreError as exc:
            raise CommandError(f"{args.file}: the zone was not changed: {exc}") from exc

    result = run_with_database(settings, work)
    print(
        f"{result.zone} imported: serial {result.serial}, {len(content.rrsets) + 1} RRsets,"
        f" {len(result.added)} records added, {len(result.removed)} removed"
    )
    return 0


def cmd_import_dir(args: argparse.Namespace, settings: Settings) -> int:
    folder = Path(args.directory)
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a directory")
    files = sorted(folder.glob("*.zone"))
    if not files:
        raise CommandError(f"{folder} holds no <origin>.zone file")
    parsed: list[ZoneContent] = []
    errors: list[str] = []
    for file in files:
        try:
            parsed.append(_parse(_origin(file.name[: -len(".zone")]), str(file)))
        except CommandError as exc:
            errors.append(str(exc))
    if errors:
        raise CommandError("nothing was imported:\n" + "\n".join(errors))
    # Parents before children: fewer labels first.
    parsed.sort(key=lambda c: (len(c.origin), c.origin.to_text()))

    async def work(db: Database) -> None:
        try:
            async with db.write() as session:
                for content in parsed:
                    await store.replace_zone(session, content, OPERATOR)
        except ZoneStoreError as exc:
            raise CommandError(f"nothing was imported: {exc}") from exc

    run_with_database(settings, work)
    print(f"{len(parsed)} zones imported from {folder}")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    origin = _origin(args.origin)

    async def work(db: Database) -> str:
        async with db.read() as session:
            zone = await store.get_zone(session, origin.to_text())
            if zone is None:
                raise CommandError(f"zone {origin} does not exist")
            rrsets = await store.current_rrsets(session, zone.id)
            content = ZoneContent(
                origin=origin,
                soa=store.soa_from_zone(zone),
                soa_ttl=zone.soa_ttl,
                rrsets=tuple(rrsets.values()),
            )
            return masterfile.to_text(content)

    sys.stdout.write(run_with_database(settings, work))
    return 0


def cmd_list(_args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> list[tuple[str, int, Any, int]]:
        async with db.read() as session:
            return await store.list_zones(session)

    for name, serial, status, count in run_with_database(settings, work):
        print(f"{name}\t{serial}\t{status.value}\t{count} rrsets")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    origin = _origin(args.origin)

    async def work(db: Database) -> None:
        try:
            async with db.write() as session:
                await store.delete_zone(session, origin.to_text(), OPERATOR)
        except ZoneStoreError as exc:
            raise CommandError(str(exc)) from exc

    run_with_database(settings, work)
    print(f"{origin} deleted")
    return 0
