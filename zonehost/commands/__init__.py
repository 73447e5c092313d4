"""Each module registers its sub-commands with `register(subparsers)`."""

from types import ModuleType

from zonehost.commands import account, api, billing, db, mail, nameserver, orders, serve, zone

COMMANDS: list[ModuleType] = [db, zone, nameserver, mail, api, account, billing, orders, serve]
