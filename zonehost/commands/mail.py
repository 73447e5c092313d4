"""`zonehost mx-forwarder` and `zonehost mail ...`: the forwarder alone, and
the operator's view of aliases, the mail service and the queue."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import replace
from typing import Any

from prometheus_client import start_http_server

from mx_forwarder import queue
from mx_forwarder.errors import ForwarderError, QueueError
from mx_forwarder.service import start_forwarder
from mx_forwarder.spool import Spool
from storage import aliases
from storage.db import Database
from zonehost.config import Settings, forwarder_config, parse_hostport
from zonehost.errors import CommandError
from zonehost.runtime import open_database, run_with_database

log = logging.getLogger(__name__)


def register(sub: Any) -> None:
    p = sub.add_parser("mx-forwarder", help="run the mail alias forwarder alone")
    p.add_argument("--listen", metavar="HOST:PORT", help="SMTP address (default 127.0.0.1:2525)")
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics there")
    p.add_argument("--no-delivery", action="store_true", help="accept and queue only")
    p.add_argument("--no-smtp", action="store_true", help="run the delivery workers only")
    p.set_defaults(func=cmd_forwarder)

    mail = sub.add_parser("mail", help="mail aliases, the mail service and the queue")
    actions = mail.add_subparsers(dest="mail_command", required=True, metavar="ACTION")
    alias = actions.add_parser("alias", help="mail aliases").add_subparsers(
        dest="alias_command", required=True, metavar="ACTION")
    a = alias.add_parser("add", help="add an alias (or targets to it)")
    a.add_argument("address")
    a.add_argument("targets", nargs="+", metavar="TARGET")
    a.add_argument("--verified", action="store_true",
                   help="the operator vouches for the targets: no confirmation mail")
    a.set_defaults(func=cmd_alias_add)
    a = alias.add_parser("list", help="list aliases and the state of each target")
    a.add_argument("domain", nargs="?")
    a.set_defaults(func=cmd_alias_list)
    a = alias.add_parser("remove", help="remove an alias (or one of its targets)")
    a.add_argument("address")
    a.add_argument("target", nargs="?")
    a.set_defaults(func=cmd_alias_remove)
    p = actions.add_parser("pack", help="the mail-redirect pack option (50 aliases instead of 5)")
    p.add_argument("domain")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(func=cmd_pack)
    p = actions.add_parser("service", help="turn a domain's mail service on or off")
    p.add_argument("domain")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(func=cmd_service)
    p = actions.add_parser("sensitive", help="whether alias changes of a domain are a sensitive "
                                             "action (second factor or allowlisted address)")
    p.add_argument("domain")
    p.add_argument("state", choices=["on", "off"])
    p.set_defaults(func=cmd_sensitive)
    p = actions.add_parser("queue", help="list the deliveries waiting in the queue")
    p.set_defaults(func=cmd_queue)
    p = actions.add_parser("retry", help="retry message ID now")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_retry)
    p = actions.add_parser("drop", help="delete message ID from the queue (no bounce)")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_drop)


# -- the forwarder ------------------------------------------------------------


def cmd_forwarder(args: argparse.Namespace, settings: Settings) -> int:
    config = forwarder_config(settings)
    if args.listen:
        config = replace(config, listen=parse_hostport(args.listen, 25))
    config = replace(config, run_delivery=not args.no_delivery, run_smtp=not args.no_smtp)
    metrics = args.metrics or settings.optional_str("mx_forwarder_metrics")
    if metrics:
        host, port = parse_hostport(metrics, 9153)
        start_http_server(port, addr=host)

    async def run() -> None:
        db = await open_database(settings)
        try:
            try:
                handle = await start_forwarder(config, db)
            except (ForwarderError, OSError) as exc:
                raise CommandError(f"cannot start the forwarder: {exc}") from exc
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if handle.port is not None:
                print(f"mx-forwarder listening on {config.listen[0]}:{handle.port}", flush=True)
            await stop.wait()
            await handle.close()
        finally:
            await db.close()

    asyncio.run(run())
    return 0


# -- aliases ------------------------------------------------------------------


def _run(settings: Settings, work: Any) -> Any:
    try:
        return run_with_database(settings, work)
    except (aliases.AliasError, QueueError) as exc:
        raise CommandError(str(exc)) from exc


def cmd_alias_add(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> aliases.AliasInfo:
        async with db.write() as session:
            return await aliases.add_alias(session, args.address, args.targets,
                                           verified=args.verified)

    info = _run(settings, work)
    _print_alias(info)
    return 0


def _print_alias(info: aliases.AliasInfo) -> None:
    targets = ", ".join(f"{t.address} ({t.state.value})" for t in info.targets)
    print(f"{info.address} -> {targets}")


def cmd_alias_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> list[aliases.AliasInfo]:
        async with db.read() as session:
            return await aliases.list_aliases(session, args.domain)

    for info in _run(settings, work):
        _print_alias(info)
    return 0


def cmd_alias_remove(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> None:
        async with db.write() as session:
            if args.target:
                await aliases.remove_target(session, args.address, args.target)
            else:
                await aliases.remove_alias(session, args.address)

    _run(settings, work)
    print(f"removed {args.address}" + (f" -> {args.target}" if args.target else ""))
    return 0


def _service(settings: Settings, domain: str, *, enabled: bool | None = None,
             redirect_pack: bool | None = None,
             aliases_sensitive: bool | None = None) -> aliases.MailServiceInfo:
    async def work(db: Database) -> aliases.MailServiceInfo:
        async with db.write() as session:
            return await aliases.set_mail_service(session, domain, enabled=enabled,
                                                  redirect_pack=redirect_pack,
                                                  aliases_sensitive=aliases_sensitive)

    info: aliases.MailServiceInfo = _run(settings, work)
    print(f"{info.domain}: mail service {'on' if info.enabled else 'off'}, "
          f"pack {'on' if info.redirect_pack else 'off'}, "
          f"{info.alias_count}/{info.quota} aliases, "
          f"alias changes sensitive {'on' if info.aliases_sensitive else 'off'}")
    return info


def cmd_pack(args: argparse.Namespace, settings: Settings) -> int:
    _service(settings, args.domain, redirect_pack=args.state == "on")
    return 0


def cmd_service(args: argparse.Namespace, settings: Settings) -> int:
    _service(settings, args.domain, enabled=args.state == "on")
    return 0


def cmd_sensitive(args: argparse.Namespace, settings: Settings) -> int:
    _service(settings, args.domain, aliases_sensitive=args.state == "on")
    return 0


# -- the queue ----------------------------------------------------------------


def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> list[queue.QueueEntry]:
        async with db.read() as session:
            return await queue.list_queue(session)

    entries: list[queue.QueueEntry] = _run(settings, work)
    for e in entries:
        print(f"{e.message_id}\t{e.state.value}\t{e.attempts}\t"
              f"{e.received_at:%Y-%m-%d %H:%M:%S}\t<{e.sender}>\t{e.recipient} -> {e.target}\t"
              f"{e.size}\tnext {e.next_attempt_at:%Y-%m-%d %H:%M:%S}\t{e.last_error or ''}")
    print(f"{len(entries)} deliveries waiting")
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> int:
        async with db.write() as session:
            return await queue.retry_now(session, args.id)

    count: int = _run(settings, work)
    if count == 0:
        raise CommandError(f"no waiting delivery for message {args.id}")
    print(f"message {args.id}: {count} deliveries due now")
    return 0


def cmd_drop(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> str | None:
        async with db.write() as session:
            return await queue.drop(session, args.id)

    path: str | None = _run(settings, work)
    if path:
        Spool.remove(path)
    print(f"message {args.id} dropped")
    return 0
