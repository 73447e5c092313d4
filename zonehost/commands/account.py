"""`zonehost account ...`: the operator's side of accounts (approve sign-ups)."""

from __future__ import annotations

import argparse
from typing import Any

from storage.db import Database
from zonehost.config import Settings
from zonehost.errors import CommandError
from zonehost.runtime import run_with_database


def register(sub: Any) -> None:
    account = sub.add_parser("account", help="client accounts (operator)").add_subparsers(
        dest="account_command", required=True, metavar="ACTION")
    p = account.add_parser("approve", help="activate the pending account led by LOGIN")
    p.add_argument("login")
    p.set_defaults(func=cmd_approve)
    p = account.add_parser("pending", help="list the accounts waiting for approval")
    p.set_defaults(func=cmd_pending)


def cmd_approve(args: argparse.Namespace, settings: Settings) -> int:
    from zoneapi.services.accounts import AccountError, approve

    async def work(db: Database) -> str:
        try:
            async with db.write() as session:
                account = await approve(session, args.login)
                return account.name
        except AccountError as exc:
            raise CommandError(str(exc)) from exc

    name = run_with_database(settings, work)
    print(f"account {name!r} of {args.login} approved")
    return 0


def cmd_pending(args: argparse.Namespace, settings: Settings) -> int:
    from zoneapi.services.accounts import pending_accounts

    async def work(db: Database) -> list[tuple[str, str, str]]:
        async with db.read() as session:
            return await pending_accounts(session)

    for login, name, email in run_with_database(settings, work):
        print(f"{login}\t{name}\t{email}")
    return 0
