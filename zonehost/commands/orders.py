"""`zonehost orders ...`: the registry work queue (the built-in registry gateway)."""

from __future__ import annotations

import argparse
from typing import Any

from billing import workqueue
from billing.errors import BillingError
from storage.db import Database
from storage.models.billing import WorkStatus
from storage.zones import OPERATOR
from zonehost.config import Settings, billing_config
from zonehost.errors import CommandError
from zonehost.runtime import run_with_database


def register(sub: Any) -> None:
    queue = sub.add_parser(
        "orders", help="registry operations waiting for an operator"
    ).add_subparsers(dest="orders_command", required=True, metavar="ACTION")
    p = queue.add_parser("list", help="open work items (--all: every one)")
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_list)
    p = queue.add_parser("done", help="mark a work item done at the registry")
    p.add_argument("id", type=int)
    p.add_argument("--note", default="")
    p.add_argument("--code", help="the transfer code, for a transfer_code item")
    p.set_defaults(func=cmd_done)
    p = queue.add_parser("cancel", help="drop a work item")
    p.add_argument("id", type=int)
    p.add_argument("--note", default="")
    p.set_defaults(func=cmd_cancel)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(db: Database) -> list[workqueue.WorkView]:
        async with db.read() as session:
            return await workqueue.list_work(
                session, status=None if args.all else WorkStatus.OPEN)

    for w in run_with_database(settings, work):
        details = " ".join(f"{k}={v}" for k, v in sorted(w.payload.items()))
        print(f"{w.id}\t{w.status.value}\t{w.kind}\t{w.domain or '-'}\t"
              f"{w.order_number or '-'}\t{details}".rstrip())
    return 0


def _finish(args: argparse.Namespace, settings: Settings, *, cancel: bool) -> int:
    config = billing_config(settings)

    async def work(db: Database) -> workqueue.WorkView:
        try:
            async with db.write() as session:
                return await workqueue.complete(session, config, args.id, OPERATOR,
                                                note=args.note, cancel=cancel,
                                                transfer_code=getattr(args, "code", None))
        except BillingError as exc:
            raise CommandError(str(exc)) from exc

    item = run_with_database(settings, work)
    order = f" (order {item.order_number})" if item.order_number else ""
    print(f"work item {item.id} {item.kind} {item.domain or ''}: {item.status.value}{order}")
    return 0


def cmd_done(args: argparse.Namespace, settings: Settings) -> int:
    return _finish(args, settings, cancel=False)


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    return _finish(args, settings, cancel=True)
