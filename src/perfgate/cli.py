"""The ``perfgate`` console script: ``compare`` a run against the history, ``store`` a run in it,
``report`` (HTML), ``merge`` (several runners), ``export`` (pytest-benchmark JSON).

Exit codes: 0 nothing regressed; 1 at least one regression; 2 bad input (a missing or corrupt file,
an unknown option), with one message naming the file and the fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perfgate.errors import PerfgateError
from perfgate.results import RunRecord

__all__ = ["main"]

BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser("compare", help="compare a results.json with the history's comparable runs")
    compare.add_argument("current", type=Path, help="the run's results.json, or a pytest-benchmark saved run")
    compare.add_argument(
        "--history", type=Path, required=True, help="directory of past results files (or a .benchmarks directory)"
    )
    compare.add_argument("--last", type=int, default=5, help="compare with up to this many latest runs (5)")
    compare.add_argument("--markdown", type=Path, help="also write the report here (e.g. $GITHUB_STEP_SUMMARY)")
    compare.add_argument("--json", type=Path, help="also write the comparison as JSON (for alerting scripts)")
    compare.add_argument(
        "--confirm", action="store_true",
        help="re-run each suspected regression's test alone (pytest, in this directory) and count only those "
        "that regress again",
    )  # fmt: skip
    export = commands.add_parser("export", help="write a results.json in pytest-benchmark's JSON format")
    export.add_argument("results", type=Path)
    export.add_argument("--output", type=Path, required=True, help="the pytest-benchmark style JSON to write")
    report = commands.add_parser("report", help="write the HTML report of a results.json (matplotlib)")
    report.add_argument("results", type=Path)
    report.add_argument("--html", type=Path, required=True, help="the self-contained HTML file to write")
    report.add_argument("--history", type=Path, help="also draw each case against this history")
    merge = commands.add_parser("merge", help="one report from several runners' results.json files")
    merge.add_argument("results", type=Path, nargs="+")
    merge.add_argument("--output", type=Path, required=True, help="the merged Markdown report to write")
    store = commands.add_parser("store", help="add a results.json to the history (append-only)")
    store.add_argument("results", type=Path)
    store.add_argument("--history", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from perfgate.history import compare_run, load_history, load_run, store_run
    from perfgate.results import write_atomically

    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            import json

            from perfgate.export import to_pytest_benchmark

            write_atomically(args.output, json.dumps(to_pytest_benchmark(RunRecord.load(args.results)), indent=1))
            print(f"wrote {args.output}")
            return 0
        if args.command == "report":
            from perfgate.html_report import html_report

            record = RunRecord.load(args.results)
            past = load_history(args.history) if args.history else []
            compared = compare_run(record, past) if args.history else None
            write_atomically(args.html, html_report(record, compared, past))
            print(f"wrote {args.html}")
            return 0
        if args.command == "merge":
            from perfgate.merge import merged_markdown

            write_atomically(args.output, merged_markdown([(path, RunRecord.load(path)) for path in args.results]))
            print(f"wrote {args.output}")
            return 0
        if args.command == "store":
            args.history.mkdir(parents=True, exist_ok=True)
            print(f"stored {store_run(args.results, args.history)}")
            return 0
        if args.last < 1:
            raise PerfgateError(f"--last={args.last}: compare with at least 1 run")
        # The run itself may already sit in the history (a .benchmarks directory): never its own baseline.
        history = [(path, run) for path, run in load_history(args.history) if path.resolve() != args.current.resolve()]
        comparison = compare_run(load_run(args.current), history, last=args.last, current_path=args.current)
        if args.confirm:
            comparison.confirm(rerun_tests, history)
    except PerfgateError as error:
        print(f"perfgate {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT
    report = comparison.markdown()
    print(report)
    if args.markdown:
        write_atomically(args.markdown, report)
    if args.json:
        import json

        write_atomically(args.json, json.dumps(comparison.to_dict(), indent=1))
    return comparison.exit_code()


def rerun_tests(nodeids: list[str]) -> RunRecord:
    """Run these tests alone in a fresh pytest process (this interpreter, this directory) and return
    their record: the re-measurement a suspected regression needs before it is believed."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="perfgate-confirm-") as scratch:
        command = [
            sys.executable,
            "-m",
            "pytest",
            *nodeids,
            f"--perfgate-report-dir={scratch}",
            "-q",
            "-p",
            "no:randomly",
        ]
        print("re-measuring:", " ".join(command), file=sys.stderr)
        subprocess.run(command, check=False)  # a failing gate is expected here: the record is what counts
        return RunRecord.load(Path(scratch) / "results.json")


if __name__ == "__main__":
    sys.exit(main())
