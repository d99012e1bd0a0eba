"""The `parley` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import migrate as cli_migrate
from gateway.cli import rules as cli_rules
from gateway.cli import run as cli_run
from gateway.cli import templates as cli_templates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description="Parley: notifications that get answered.")
    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli_rules.register(commands)
    cli_run.register(commands)
    cli_templates.register(commands)
    cli_migrate.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
