"""Each module registers its sub-commands with `register(subparsers)`.

Modules are imported on demand: a `zonehost nameserver` process should not
carry the PDF library of billing or the web framework of the API.
"""

import importlib
from types import ModuleType

# top-level command -> the module (in this package) that registers it
COMMANDS: dict[str, str] = {
    "db": "db",
    "zone": "zone",
    "nameserver": "nameserver",
    "zoneapi": "api",
    "account": "account",
    "mx-forwarder": "mail",
    "mail": "mail",
    "billing": "billing",
    "orders": "orders",
    "serve": "serve",
}


def load(command: str | None) -> list[ModuleType]:
    """The modules needed to parse `command` (all of them when unknown, e.g. for --help)."""
    names = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    return [importlib.import_module(f"zonehost.commands.{name}") for name in names]
