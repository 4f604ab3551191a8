"""The ``perfgate`` console script: ``compare`` a run against the history, ``store`` a run in it.

Exit codes: 0 nothing regressed; 1 at least one regression; 2 bad input (a missing or corrupt file,
an unknown option), with one message naming the file and the fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perfgate.errors import PerfgateError

__all__ = ["main"]

BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare a results.json with the history's comparable runs")
    compare.add_argument("current", type=Path, help="the run's results.json")
    compare.add_argument("--history", type=Path, required=True, help="directory of past results files")
    compare.add_argument("--last", type=int, default=5, help="compare with up to this many latest runs (5)")
    compare.add_argument("--markdown", type=Path, help="also write the report here (e.g. $GITHUB_STEP_SUMMARY)")
    store = commands.add_parser("store", help="add a results.json to the history (append-only)")
    store.add_argument("results", type=Path)
    store.add_argument("--history", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from perfgate.history import compare_run, load_history, store_run
    from perfgate.results import RunRecord, write_atomically

    args = _parser().parse_args(argv)
    try:
        if args.command == "store":
            args.history.mkdir(parents=True, exist_ok=True)
            print(f"stored {store_run(args.results, args.history)}")
            return 0
        if args.last < 1:
            raise PerfgateError(f"--last={args.last}: compare with at least 1 run")
        comparison = compare_run(
            RunRecord.load(args.current), load_history(args.history), last=args.last, current_path=args.current
        )
    except PerfgateError as error:
        print(f"perfgate {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT
    report = comparison.markdown()
    print(report)
    if args.markdown:
        write_atomically(args.markdown, report)
    return comparison.exit_code()


if __name__ == "__main__":
    sys.exit(main())
