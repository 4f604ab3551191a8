"""The ``perfgate`` console script: ``compare`` a run against the history, ``store`` a run in it,
``accept`` cases' new figures as their baseline, ``report`` (HTML), ``merge`` (several runners, or one
run's shards), ``export`` (pytest-benchmark JSON), ``gate`` (may a candidate model or environment
replace the current one), and ``thresholds derive`` / ``thresholds show`` (gate a new runner's class
from its stored runs; what gates on a class).

Exit codes: 0 nothing regressed (every gate passed); 1 at least one regression (a gate failed); 2 bad
input (a missing or corrupt file, a missing model directory or interpreter, an unknown option), with
one message naming the file and the fix; 3 (gate) nothing failed but a check was inconclusive.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol

from perfgate.cli import (
    accept,
    bisect,
    compare,
    cross_check,
    explain,
    export,
    gate,
    gpus,
    join_night,
    merge,
    recommend,
    report,
    store,
    thresholds,
)
from perfgate.errors import PerfgateError

__all__ = ["BAD_INPUT", "main"]

BAD_INPUT = 2


class Command(Protocol):
    """A sub-command is one module here: ``add`` declares its parser, ``run`` does its work."""

    def add(self, commands: Any) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {  # in --help's order
    "compare": compare, "recommend": recommend, "bisect": bisect, "cross-check": cross_check, "explain": explain,
    "export": export, "report": report, "merge": merge, "join-night": join_night, "gate": gate,
    "thresholds": thresholds, "gpus": gpus, "store": store, "accept": accept,
}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"perfgate {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command].run(args)
    except PerfgateError as error:
        print(f"perfgate {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("perfgate")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


if __name__ == "__main__":
    sys.exit(main())
