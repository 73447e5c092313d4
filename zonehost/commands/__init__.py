"""Each module registers its sub-commands with `register(subparsers)`."""

from types import ModuleType

from zonehost.commands import db, serve, zone

COMMANDS: list[ModuleType] = [db, zone, serve]
