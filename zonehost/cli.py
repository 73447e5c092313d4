"""The `zonehost` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from zonehost import commands
from zonehost.config import ConfigError, Settings
from zonehost.errors import CommandError


def _global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", help="TOML configuration file (or ZONEHOST_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`, with only the command modules it needs (all
    of them without `argv`)."""
    command = None
    if argv is not None:
        pre = argparse.ArgumentParser(add_help=False)
        _global_options(pre)
        _, rest = pre.parse_known_args(argv)
        command = rest[0] if rest and not rest[0].startswith("-") else None
    parser = argparse.ArgumentParser(
        prog="zonehost", description="Registrar-grade DNS hosting platform."
    )
    _global_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in commands.load(command):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
