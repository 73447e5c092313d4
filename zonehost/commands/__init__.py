"""Each module registers its sub-commands with `register(subparsers)`."""

from types import ModuleType

from zonehost.commands import db, nameserver, serve, zone

COMMANDS: list[ModuleType] = [db, zone, nameserver, serve]
