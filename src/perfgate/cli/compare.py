"""``perfgate compare``: a run against the history's comparable runs; with ``--confirm`` each suspect
re-measured alone. Exit 0 nothing regressed, 1 a regression."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.records.history import load_history, load_run
from perfgate.records.regressions import compare_run
from perfgate.records.results import RunRecord, write_atomically
from perfgate.reports.report import fit_job_summary

__all__ = ["add", "run"]


def add(commands: Any) -> None:
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
    compare.add_argument(
        "--explain", type=int, default=0, metavar="N",
        help="profile the N worst confirmed speed regressions op by op (needs --confirm): this checkout's code "
        "and libraries against the good run's (its commit in a git worktree, its library versions in an "
        "overlay environment), each side in its own worker; the diff goes into the report and --json",
    )  # fmt: skip
    compare.add_argument(
        "--explain-dir", type=Path,
        help="where --explain writes each side's Chrome trace (default: explain/ beside the results file)",
    )  # fmt: skip
    compare.add_argument("--find-links", action="append", default=[],
                         help="--explain: wheels of the good run's library versions (pip's)")  # fmt: skip
    compare.add_argument("--index-url", help="--explain: the index serving the good run's library versions (pip's)")
    compare.add_argument("--no-index", action="store_true", help="--explain: only --find-links (pip's)")
    compare.add_argument(
        "--annotate", action="store_true",
        help="write each case's status (and confirmation) into the results file, so that once it is in the "
        "history the HTML report marks its confirmed regressions",
    )  # fmt: skip
    compare.add_argument(
        "--shard", action="store_true",
        help="the run is one shard of a night: cases of the history it did not measure are not reported "
        "missing (perfgate join-night reports them for the whole night)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.last < 1:
        raise PerfgateError(f"--last={args.last}: compare with at least 1 run")
    if args.explain < 0 or (args.explain and not args.confirm):
        raise PerfgateError(
            f"--explain={args.explain}: profiles confirmed regressions only; add --confirm (and N >= 1)"
        )
    current = load_run(args.current)  # before any walk of the history: a wrong path fails at once
    # The run itself may already sit in the history (a .benchmarks directory): never its own baseline.
    history = load_history(args.history).without(args.current)
    for note in history.notes():
        print(f"perfgate compare: history {str(args.history)!r}: {note}", file=sys.stderr)
    comparison = compare_run(current, history, last=args.last, current_path=args.current, report_missing=not args.shard)
    if args.confirm:
        comparison.confirm(confirmation_rerun(current), history)
    if args.explain:
        from perfgate.answers.explain_regression import RegressionExplainer

        out = args.explain_dir or args.current.parent / "explain"
        index = (*(f"--find-links={link}" for link in args.find_links),
                 *([f"--index-url={args.index_url}"] if args.index_url else []),
                 *(["--no-index"] if args.no_index else []))  # fmt: skip
        explainer = RegressionExplainer(args.explain, out, Path.cwd(), index_options=index,
                                        log=lambda line: print(line, file=sys.stderr))  # fmt: skip
        explainer.explain(comparison, current)
    if args.annotate:
        record = RunRecord.load(args.current)  # a pytest-benchmark run cannot carry it: named error
        record.against_history = {
            case.case_id: {"status": str(case.status), "confirmed": case.confirmed} for case in comparison.cases
        }
        record.save(args.current)
    report = comparison.markdown()
    print(report)
    if args.markdown:
        write_atomically(args.markdown, fit_job_summary(report))
    if args.json:
        import json

        write_atomically(args.json, json.dumps(comparison.to_dict(), indent=1))
    return comparison.exit_code()


# The settings a re-measurement repeats from the original run: what makes its figure the same figure.
RERUN_SETTINGS = ("budget", "min_pairs", "seed", "threads", "precision", "hardware_class")
EVERY_MARKER = "slow or not slow"


def confirmation_rerun(original: RunRecord) -> Any:
    """``rerun_tests`` with the original run's measurement settings; a pytest-benchmark run cannot be
    re-measured by perfgate (its tests time themselves): a clear refusal instead."""
    if str(original.fingerprint.get("source", "")).startswith("pytest-benchmark"):
        raise PerfgateError(
            "--confirm re-runs perfgate's own cases; this is a pytest-benchmark run: re-run the suspects with "
            "pytest-benchmark (--benchmark-compare) or compare without --confirm"
        )
    settings = {name: original.config.get(name) for name in RERUN_SETTINGS}
    # The run's own -m: a slow case is skipped unless the expression names "slow". A record written before
    # the expression was recorded re-runs its suspects with every marker selected: they were measured.
    markexpr = original.config.get("markexpr", EVERY_MARKER)
    from perfgate.records.regressions import rerun_tests

    return lambda nodeids: rerun_tests(nodeids, settings, markexpr=markexpr)
