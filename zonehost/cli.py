"""The `zonehost` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from zonehost.commands import COMMANDS
from zonehost.config import ConfigError, Settings
from zonehost.errors import CommandError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zonehost", description="Registrar-grade DNS hosting platform."
    )
    parser.add_argument("-c", "--config", help="TOML configuration file (or ZONEHOST_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = Settings.load(args.config)
        result: int = args.func(args, settings)
        return result
    except (CommandError, ConfigError) as exc:
        print(f"zonehost: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
