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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.results import RunRecord
from perfgate.thresholds import HARDWARE_FIELDS

__all__ = ["main"]

BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perfgate", description=__doc__)
    parser.add_argument("--version", action="version", version=f"perfgate {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_compare(commands)
    _add_recommend(commands)
    _add_bisect(commands)
    _add_cross_check(commands)
    _add_explain(commands)
    export = commands.add_parser("export", help="write a results.json in pytest-benchmark's JSON format")
    export.add_argument("results", type=Path)
    destination = export.add_mutually_exclusive_group(required=True)
    destination.add_argument("--output", type=Path, help="the pytest-benchmark style JSON to write")
    destination.add_argument(
        "--storage", type=Path,
        help="save it as pytest-benchmark's next run in this storage directory (e.g. .benchmarks), where "
        "`pytest-benchmark list` and `pytest-benchmark compare` find it",
    )  # fmt: skip
    report = commands.add_parser("report", help="write the HTML report of a results.json (matplotlib)")
    report.add_argument("results", type=Path)
    report.add_argument("--html", type=Path, required=True, help="the self-contained HTML file to write")
    report.add_argument("--markdown", type=Path, help="also write the Markdown summary (summary.md) here")
    report.add_argument("--history", type=Path, help="also draw each case against this history")
    merge = commands.add_parser(
        "merge", help="one report from several runners' results.json files, or one run's shards joined"
    )
    merge.add_argument("results", type=Path, nargs="+")
    merge.add_argument("--output", type=Path, help="write the side-by-side Markdown report of several runners")
    merge.add_argument(
        "--results", dest="joined", type=Path,
        help="join shards of one run (one hardware class) into this results.json, for compare and the report",
    )  # fmt: skip
    _add_join_night(commands)
    gate = commands.add_parser(
        "gate", help="model or library upgrade: candidate against current, interleaved, with non-inferiority margins"
    )
    gate.add_argument("--current", type=Path, required=True, help="the current model's save_pretrained() directory")
    gate.add_argument("--candidate", type=Path, help="the candidate model's directory (default: --current)")
    gate.add_argument("--current-python", default=sys.executable, help="the current environment's interpreter")
    gate.add_argument("--candidate-python", help="the candidate environment's interpreter (a library upgrade)")
    gate.add_argument("--task", default="feature-extraction", help="feature-extraction, text-classification, ...")
    gate.add_argument("--technique", action="append", help="technique(s) both arms serve with (fp32-eager)")
    gate.add_argument("--eval-file", type=Path, help="labelled set (JSON lines) scoring task accuracy")
    gate.add_argument("--sentences", type=Path, help="timed and compared texts, one per line (default: the set's)")
    gate.add_argument("--batch-size", type=int, default=1)
    gate.add_argument("--threads", type=int)
    gate.add_argument("--device", default="cpu")
    gate.add_argument("--accuracy-margin", type=float, default=0.02, help="largest accuracy loss allowed (0.02)")
    gate.add_argument("--max-slowdown", type=float, default=0.10, help="largest slowdown allowed (0.10)")
    gate.add_argument("--max-memory-growth", type=float, default=0.10, help="largest memory growth allowed (0.10)")
    gate.add_argument("--budget", type=float, default=20.0, help="seconds of ABBA timing per gate (20)")
    gate.add_argument("--no-memory", action="store_true", help="skip the serving-memory check")
    gate.add_argument("--cache-dir", type=Path, default=Path("~/.cache/perfgate"), help="device locks live here")
    gate.add_argument("--markdown", type=Path, help="also write the report here (e.g. $GITHUB_STEP_SUMMARY)")
    gate.add_argument("--json", type=Path, help="also write the verdicts and figures as JSON")
    _add_thresholds(commands)
    _add_gpus(commands)
    _add_history(commands)
    return parser


BISECT_EPILOG = """
modes:
  library releases   perfgate bisect --package onnxruntime --good 1.30.0 --bad 1.32.0 \\
                       --case minilm/onnxruntime-o2/b8/cpu
                     one overlay environment per release measured (pip resolves it, dependencies included
                     when they changed), each gated against --good with the library-upgrade gate's speed
                     check; an undecided step is measured again with twice the budget, then skipped
  commits            perfgate bisect --git v1.4 HEAD --case minilm/my-technique/b8/cpu --results nightly.json
                     --good measured three times forms a band; git bisect run in a temporary worktree
                     measures each step's speedup against fp32 and judges it against the band (125: skip)

The case id is MODEL/TECHNIQUE/bBATCH/DEVICE as results.json names it; the project's suite (its conftest)
resolves the model and technique. Exit 0 names the first bad release or commit, 1 when none was found.
"""


def _add_cross_check(commands: Any) -> None:
    check = commands.add_parser(
        "cross-check", help="time each arm of a case alone, a fresh process per arm, beside perfgate's interval"
    )
    check.add_argument("--case", required=True, help="MODEL/TECHNIQUE/bBATCH/DEVICE, as results.json names it")
    check.add_argument("--rounds", type=int, default=5, help="rounds of one process per arm, order alternating (5)")
    check.add_argument("--seconds", type=float, default=3.0, help="seconds of single calls per arm and round (3)")
    check.add_argument("--results", type=Path, help="a results.json holding the case: its interval, beside")
    check.add_argument("--markdown", type=Path, help="also write the table here")


def _add_explain(commands: Any) -> None:
    explain = commands.add_parser(
        "explain", help="profile a case's candidate against fp32 eager: which ops its time went to, side by side"
    )
    explain.add_argument("--case", required=True, help="MODEL/TECHNIQUE/bBATCH/DEVICE, as results.json names it")
    explain.add_argument("--rounds", type=int, default=8, help="profiled rounds, one block per side, alternating (8)")
    explain.add_argument("--calls", type=int, default=10, help="calls per profiled block (10)")
    explain.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's choice)")
    explain.add_argument("--out", type=Path, default=Path("reports/explain"),
                         help="where explain.json, explain.md and each side's trace go (reports/explain)")  # fmt: skip


def _explain(args: argparse.Namespace) -> int:
    import json

    from perfgate.bisect import parse_case_id, probe_case
    from perfgate.explain import explain_case, markdown
    from perfgate.hardware import detect
    from perfgate.results import write_atomically

    target = parse_case_id(args.case)
    probe = probe_case(target, Path.cwd())
    explanation = explain_case(target.case_id, probe, args.out, args.rounds, args.calls, args.threads)
    table = markdown(explanation, detect().hardware_class(target.device))
    write_atomically(args.out / "explain.json", json.dumps(explanation.to_dict(), indent=1) + "\n")
    write_atomically(args.out / "explain.md", table)
    print(table)
    print(f"wrote {args.out / 'explain.md'}, {args.out / 'explain.json'} and a Chrome trace per side")
    return 0


def _cross_check(args: argparse.Namespace) -> int:
    from perfgate.bisect import parse_case_id, probe_case
    from perfgate.cross_check import cross_check, markdown
    from perfgate.hardware import detect

    target = parse_case_id(args.case)
    in_process = None
    if args.results is not None:
        record = RunRecord.load(args.results)
        case = next((c for c in record.cases if c.spec.case_id == target.case_id), None)
        if case is None or "estimate" not in case.metrics.get("speed", {}):
            raise PerfgateError(
                f"{args.results}: no speed figure for {target.case_id}; run its test, or leave out --results"
            )
        in_process = case.metrics["speed"]["estimate"]
    probe = probe_case(target, Path.cwd())
    check = cross_check(target, probe, args.rounds, args.seconds)
    table = markdown(check, in_process, detect().hardware_class(target.device))
    print(table)
    if args.markdown:
        from perfgate.results import write_atomically

        write_atomically(args.markdown, table + "\n")
    return 0


def _add_bisect(commands: Any) -> None:
    bisect = commands.add_parser(
        "bisect", help="find the library release or the commit that made a case slower",
        description="From a confirmed regression to its cause: bisect library releases (--package) or the "
        "commits of this repository (--git), each step decided by a same-process interval.",
        epilog=BISECT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    mode = bisect.add_mutually_exclusive_group(required=True)
    mode.add_argument("--package", help="bisect this library's releases between --good and --bad")
    mode.add_argument("--git", nargs=2, metavar=("GOOD", "BAD"), help="bisect this repository's commits")
    bisect.add_argument("--good", help="the last release known good (--package)")
    bisect.add_argument("--bad", help="the first release known bad (--package)")
    bisect.add_argument("--case", required=True, help="MODEL/TECHNIQUE/bBATCH/DEVICE, as results.json names it")
    bisect.add_argument("--results", type=Path, help="a results.json holding the case: its test's node id")
    bisect.add_argument("--test", help="the pytest node id that measures the case (default: from --results)")
    bisect.add_argument("--find-links", action="append", default=[], help="a directory or page of wheels (pip's)")
    bisect.add_argument("--index-url", help="the package index (pip's; e.g. torch's CPU index)")
    bisect.add_argument("--no-index", action="store_true", help="only --find-links, no index (pip's)")
    bisect.add_argument("--import", dest="import_name", help="the module that must import (default: the package)")
    bisect.add_argument("--budget", type=float, default=20.0, help="seconds of timing per step (20)")
    bisect.add_argument("--max-slowdown", type=float, default=0.10, help="slower than this is bad (0.10)")
    bisect.add_argument("--replicates", type=int, help="fresh pairs of workers per release step (3)")
    bisect.add_argument("--workdir", type=Path, help="keep the environments here (default: a temporary one)")
    bisect.add_argument("--markdown", type=Path, help="also write the answer here")
    bisect.add_argument("--json", type=Path, help="also write it as JSON")


def _bisect(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from perfgate.bisect import (
        CommitBisection,
        ReleaseBisection,
        bisect_commits,
        bisect_releases,
        parse_case_id,
        probe_case,
    )
    from perfgate.results import write_atomically
    from perfgate.technique import STACK_SEPARATOR, register_technique, technique_names

    target = parse_case_id(args.case)
    nodeid = args.test
    if nodeid is None and args.results is not None:
        case = next((c for c in RunRecord.load(args.results).cases if c.spec.case_id == args.case), None)
        if case is None:
            raise PerfgateError(f"--results {str(args.results)!r} holds no case {args.case}: pass one that does")
        nodeid = case.nodeid
    if args.git:
        if nodeid is None:
            raise PerfgateError("--git needs the test that measures the case: --results RESULTS or --test NODEID")
        plan = CommitBisection(args.git[0], args.git[1], target, nodeid, Path.cwd(), budget_seconds=args.budget,
                               max_slowdown=args.max_slowdown)  # fmt: skip
        result = bisect_commits(plan)
    else:
        if not (args.good and args.bad):
            raise PerfgateError("--package needs --good VERSION and --bad VERSION")
        index = [*(f"--find-links={link}" for link in args.find_links),
                 *([f"--index-url={args.index_url}"] if args.index_url else []),
                 *(["--no-index"] if args.no_index else [])]  # fmt: skip
        probe = probe_case(target, Path.cwd(), paths=[nodeid.split("::")[0]] if nodeid else [])
        if target.technique not in technique_names() and STACK_SEPARATOR not in target.technique:
            register_technique(target.technique, probe["technique_path"])  # the project's own, from its conftest
        with tempfile.TemporaryDirectory(prefix="perfgate-bisect-") as scratch:
            workdir = args.workdir or Path(scratch)
            plan_releases = ReleaseBisection(
                args.package, args.good, args.bad, target, probe, workdir, index,
                args.import_name or args.package.replace("-", "_"), budget_seconds=args.budget,
                max_slowdown=args.max_slowdown, replicates=args.replicates,
            )  # fmt: skip
            result = bisect_releases(plan_releases)
    text = result.markdown()
    print(text)
    if args.markdown:
        write_atomically(args.markdown, text)
    if args.json:
        write_atomically(args.json, json.dumps(result.to_dict(), indent=1))
    return 0 if result.first_bad is not None else 1


def _add_recommend(commands: Any) -> None:
    recommend = commands.add_parser(
        "recommend",
        help="which technique or stack to ship per model and batch size under limits, with its evidence "
        "(exit 1 when no candidate meets them)",
    )
    recommend.add_argument("results", type=Path, help="the run's results.json")
    recommend.add_argument("--min-cosine", type=float, help="fidelity floor: output cosine against fp32")
    recommend.add_argument(
        "--min-task-delta", type=float, help="task accuracy the candidate may lose, as a delta (-0.02: 2 points), "
        "judged on the paired interval's low end"
    )  # fmt: skip
    recommend.add_argument("--max-memory-ratio", type=float, help="serving memory ceiling, over fp32's")
    recommend.add_argument("--batch-size", type=int, help="only this batch size")
    recommend.add_argument("--device", help="only this device (cpu, cuda)")
    recommend.add_argument("--markdown", type=Path, help="also write the recommendation here")
    recommend.add_argument("--json", type=Path, help="also write it as JSON")


def _recommend(args: argparse.Namespace) -> int:
    import json

    from perfgate.recommend import Limits, markdown, most_excluding_limit, recommend
    from perfgate.results import write_atomically

    limits = Limits(args.min_cosine, args.min_task_delta, args.max_memory_ratio)
    choices = recommend(RunRecord.load(args.results), limits, args.batch_size, args.device)
    if not choices:
        narrowed = " at the batch size or device asked" if args.batch_size or args.device else ""
        raise PerfgateError(f"{str(args.results)!r} has no measured ab-forward case{narrowed}")
    text = markdown(choices, limits)
    print(text)
    if args.markdown:
        write_atomically(args.markdown, text)
    if args.json:
        write_atomically(args.json, json.dumps([c.to_dict() for c in choices], indent=1))
    if all(not choice.qualified for choice in choices):
        limit = most_excluding_limit(choices)
        print(
            f"perfgate recommend: no candidate meets the limits; the {limit} limit excluded the most", file=sys.stderr
        )
        return 1
    return 0


def _add_history(commands: Any) -> None:
    store = commands.add_parser("store", help="add a results.json to the history (append-only)")
    store.add_argument("results", type=Path)
    store.add_argument("--history", type=Path, required=True)
    accept = commands.add_parser(
        "accept", help="accept cases' figures in a run as their new baseline (a marker in the history)"
    )
    accept.add_argument("cases", nargs="+", help="case ids as compare prints them, e.g. minilm/ort-int8/b1/cpu")
    accept.add_argument("--history", type=Path, required=True, help="the history directory compare reads")
    accept.add_argument("--reason", required=True, help="why: recorded, and quoted when the alert closes")
    accept.add_argument("--run", type=Path, help="the accepted run (default: the history's newest with these cases)")
    accept.add_argument("--who", help="who accepts (default: $GITHUB_ACTOR, git's user.name, the login)")
    accept.add_argument(
        "--into", type=Path, help="write the marker here instead (a directory uploaded with the night's artifact)"
    )


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("perfgate")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _add_compare(commands: Any) -> None:
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
        "--annotate", action="store_true",
        help="write each case's status (and confirmation) into the results file, so that once it is in the "
        "history the HTML report marks its confirmed regressions",
    )  # fmt: skip
    compare.add_argument(
        "--shard", action="store_true",
        help="the run is one shard of a night: cases of the history it did not measure are not reported "
        "missing (perfgate join-night reports them for the whole night)",
    )  # fmt: skip


def _add_join_night(commands: Any) -> None:
    night = commands.add_parser(
        "join-night",
        help="join a nightly run's shards, which may have run on different hardware classes, after each "
        "compared itself with its class's history",
    )
    night.add_argument("shards", type=Path, nargs="*", help="the shards' artifact folders (results.json, compare.json)")
    night.add_argument("--output", type=Path, required=True, help="writes CLASS/results.json and compare.json here")
    night.add_argument("--expect-shards", type=int, required=True, help="how many shards the matrix started")
    night.add_argument("--history", type=Path, help="the history the shards compared with (for missing cases)")
    night.add_argument("--markdown", type=Path, help="also write the night's summary here ($GITHUB_STEP_SUMMARY)")


def _add_gpus(commands: Any) -> None:
    gpus = commands.add_parser(
        "gpus", help="the GPUs the plugin will run the gpu cases on (its own detection, checked against torch)"
    )
    gpus.add_argument(
        "--require", action="store_true", help="exit 1 when there is none, or when torch sees another count"
    )


def _gpus(require: bool) -> int:
    from perfgate.hardware import detect_gpus, visible_gpus_report

    try:
        import torch

        torch_sees: int | None = torch.cuda.device_count()
    except ImportError:
        torch_sees = None
    found, message = visible_gpus_report(detect_gpus(), torch_sees)
    print(message, file=sys.stdout if found else sys.stderr)
    return 0 if found or not require else 1


def _add_thresholds(commands: Any) -> None:
    thresholds = commands.add_parser("thresholds", help="derive a hardware class's thresholds; show what gates")
    actions = thresholds.add_subparsers(dest="action", required=True)
    derive = actions.add_parser(
        "derive", help="write the hardware-dependent thresholds of one class from stored runs (perfgate store)"
    )
    derive.add_argument("--history", type=Path, required=True, help="directory of stored results files")
    derive.add_argument("--class", dest="hardware_class", help="hardware class (default: this machine's CPU class)")
    derive.add_argument("--min-runs", type=int, default=3, help="refuse with fewer comparable runs (3)")
    derive.add_argument(
        "--output", type=Path, help="file to write (default: thresholds.d/CLASS.toml beside the project's ini file)"
    )
    promise = actions.add_parser(
        "keep-promise",
        help="move each bound that lets a no-effect run pass, where every value its comment records shows the "
        "effect, to the bound the rule's promise gives; without --write, list them and exit 1 when any would move",
    )
    promise.add_argument("files", type=Path, nargs="+", help="thresholds files (the project's and thresholds.d/*)")
    promise.add_argument("--write", action="store_true", help="rewrite the files in place")
    show = actions.add_parser("show", help="per technique, which fields gate on a class, from which section and file")
    show.add_argument("--class", dest="hardware_class", help="hardware class (default: this machine's CPU class)")
    show.add_argument("--thresholds", type=Path, help="a file over the project's (as --perfgate-thresholds)")
    show.add_argument(
        "--check", action="store_true",
        help="print nothing; exit 0 when the class has a derived file in thresholds.d, 1 when it has none",
    )  # fmt: skip


def _export(results: Path, output: Path | None, storage: Path | None) -> int:
    import json

    from perfgate.export import storage_path, to_pytest_benchmark
    from perfgate.results import write_atomically

    exported = to_pytest_benchmark(RunRecord.load(results))
    if storage is not None:
        output = storage_path(storage)
        output.parent.mkdir(parents=True, exist_ok=True)
    assert output is not None  # argparse requires one of --output and --storage
    write_atomically(output, json.dumps(exported, indent=1))
    print(f"wrote {output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from perfgate.history import compare_run, load_history, load_run, store_run
    from perfgate.report import fit_job_summary
    from perfgate.results import write_atomically

    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            return _export(args.results, args.output, args.storage)
        if args.command == "report":
            from perfgate.html_report import html_report

            record = RunRecord.load(args.results)
            past = load_history(args.history).without(args.results) if args.history else []
            compared = compare_run(record, past) if args.history else None
            write_atomically(args.html, html_report(record, compared, past))
            print(f"wrote {args.html}")
            if args.markdown:
                from perfgate.report import markdown_summary

                write_atomically(args.markdown, markdown_summary(record))
                print(f"wrote {args.markdown}")
            return 0
        handler = COMMANDS.get(args.command)
        if handler is not None:
            return handler(args)
        if args.command == "gpus":
            return _gpus(args.require)
        if args.command == "store":
            args.history.mkdir(parents=True, exist_ok=True)
            print(f"stored {store_run(args.results, args.history)}")
            return 0
        if args.command == "accept":
            return _accept(args)
        if args.last < 1:
            raise PerfgateError(f"--last={args.last}: compare with at least 1 run")
        current = load_run(args.current)  # before any walk of the history: a wrong path fails at once
        # The run itself may already sit in the history (a .benchmarks directory): never its own baseline.
        history = load_history(args.history).without(args.current)
        for note in history.notes():
            print(f"perfgate compare: history {str(args.history)!r}: {note}", file=sys.stderr)
        comparison = compare_run(
            current, history, last=args.last, current_path=args.current, report_missing=not args.shard
        )
        if args.confirm:
            comparison.confirm(confirmation_rerun(current), history)
        if args.annotate:
            record = RunRecord.load(args.current)  # a pytest-benchmark run cannot carry it: named error
            record.against_history = {
                case.case_id: {"status": str(case.status), "confirmed": case.confirmed} for case in comparison.cases
            }
            record.save(args.current)
    except PerfgateError as error:
        print(f"perfgate {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT
    report = comparison.markdown()
    print(report)
    if args.markdown:
        write_atomically(args.markdown, fit_job_summary(report))
    if args.json:
        import json

        write_atomically(args.json, json.dumps(comparison.to_dict(), indent=1))
    return comparison.exit_code()


def _merge(args: argparse.Namespace) -> int:
    from perfgate.merge import join_shards, merged_markdown
    from perfgate.results import write_atomically

    if args.output is None and args.joined is None:
        raise PerfgateError("merge: say what to write: --results FILE (join shards) or --output FILE (Markdown)")
    runs = [(path, RunRecord.load(path)) for path in args.results]
    if args.joined is not None:
        joined = join_shards(runs)
        joined.save(args.joined)
        print(f"wrote {args.joined}: {len(joined.cases)} cases from {len(runs)} shard(s)")
    if args.output is not None:
        write_atomically(args.output, merged_markdown(runs))
        print(f"wrote {args.output}")
    return 0


def _join_night(args: argparse.Namespace) -> int:
    from perfgate.history import load_history
    from perfgate.night import join_night, read_shard
    from perfgate.report import fit_job_summary
    from perfgate.results import write_atomically

    history, fetch_note = None, ""
    if args.history is not None:
        if args.history.is_dir():
            history = load_history(args.history)
            fetched = args.history / "fetch.txt"  # scripts/fetch_history.sh says what it fetched, or why not
            fetch_note = fetched.read_text().strip() if fetched.is_file() else ""
        else:
            fetch_note = f"no history at {str(args.history)!r}: missing cases cannot be named"
    try:
        night = join_night([read_shard(folder) for folder in args.shards], args.expect_shards, history, fetch_note)
    except PerfgateError as error:  # the night's summary must say why it is red, whatever the log holds
        if args.markdown:
            with args.markdown.open("a") as summary:
                summary.write(f"# perfgate nightly\n\n**This night is red because:** the shards could not be "
                              f"joined: {error}\n")  # fmt: skip
        raise
    night.write(args.output)
    markdown = night.markdown()
    write_atomically(args.output / "night.md", markdown)
    if args.markdown:
        with args.markdown.open("a") as summary:
            summary.write(fit_job_summary(markdown))
    print(markdown)
    return 0


def _accept(args: argparse.Namespace) -> int:
    import json

    from perfgate.history import accept_cases, load_history
    from perfgate.results import write_atomically

    history = load_history(args.history)
    acceptance = accept_cases(args.cases, history, args.reason, args.who, args.run)
    stamp = acceptance.when.replace(":", "").replace("-", "").replace("+", "")
    target = (args.into or args.history) / f"accept-{stamp}-{acceptance.key}.json"
    write_atomically(target, json.dumps(acceptance.to_dict(), indent=1))
    print(
        f"wrote {target}: {', '.join(acceptance.cases)} compare with their figures in {acceptance.run} and later "
        f"runs from now on ({acceptance.reason!r}, by {acceptance.who})"
    )
    return 0


def _keep_promise(files: list[Path], write: bool) -> int:
    from perfgate.derive import keep_promises
    from perfgate.results import write_atomically

    moves = 0
    for path in files:
        if not path.is_file():
            raise PerfgateError(f"{path}: no such thresholds file")
        text, moved = keep_promises(path, path.read_text(encoding="utf-8"))
        for move in moved:
            print(f"{path}:{move.line} [{move.section}] {move.before} -> {move.after} "
                  f"(values {', '.join(f'{v:g}' for v in move.values)}; {move.note})")  # fmt: skip
        if moved and write:
            write_atomically(path, text)
        moves += len(moved)
    state = "moved" if write else "would move"
    print(f"perfgate thresholds keep-promise: {moves} bound(s) {state} in {len(files)} file(s)")
    return 0 if write or not moves else 1


def _thresholds(args: argparse.Namespace) -> int:
    from perfgate.derive import derive
    from perfgate.hardware import detect
    from perfgate.history import load_history
    from perfgate.results import write_atomically
    from perfgate.thresholds import class_files_dir, layers, load_thresholds, project_ini_thresholds

    if args.action == "keep-promise":
        return _keep_promise(args.files, args.write)
    root = Path.cwd()
    ini = project_ini_thresholds(root)
    hardware = detect()
    hardware_class = args.hardware_class or hardware.hardware_class("cpu")
    if args.action == "derive":
        if args.min_runs < 1:
            raise PerfgateError(f"--min-runs={args.min_runs}: derive from at least 1 run")
        history = load_history(args.history)
        for note in history.notes():
            print(f"perfgate thresholds derive: history {str(args.history)!r}: {note}", file=sys.stderr)
        derived = derive(history, hardware_class, args.min_runs)
        output = args.output or class_files_dir(ini, root) / f"{hardware_class}.toml"
        write_atomically(output, derived.toml())
        print(
            f"wrote {output}: {len(derived.values)} thresholds for {hardware_class} from {len(derived.runs)} runs"
            + (f"; {len(derived.left_out)} left out (in too few runs)" if derived.left_out else "")
        )
        return 0
    if args.check:
        return 0 if (class_files_dir(ini, root) / f"{hardware_class}.toml").is_file() else 1
    from perfgate.technique import get_technique, technique_names

    _import_project_conftest(root)  # a project's own techniques, registered there, may have thresholds
    paths = layers(ini, root, args.thresholds)
    thresholds = load_thresholds(paths, technique_names())
    print(f"hardware class {hardware_class}; files, later overriding earlier: {', '.join(map(str, paths))}")
    for technique in thresholds.techniques():
        dtype = get_technique(technique.split("+")[0]).native_math if "+" not in technique else None
        capability = hardware.capability(dtype) if dtype else None
        rows = thresholds.applicable(technique, hardware_class, capability)
        if not rows:
            continue
        hardware_rows = [row for row in rows if row[1] in HARDWARE_FIELDS or row[1] == "max_slowdown"]
        state = "speed/memory gated" if hardware_rows else "fidelity and sizes only (speed and memory UNGATED)"
        print(f"\n{technique}: {state}")
        for section, name, path, value in rows:
            print(f"  {name} = {value:g}  [{section}] {path}")
    return 0


def _import_project_conftest(root: Path) -> None:
    """Import the project's root ``conftest.py`` as pytest would, so the techniques it registers are known."""
    import importlib.util

    conftest = root / "conftest.py"
    if not conftest.is_file():
        return
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("conftest", conftest)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("conftest", module)
    spec.loader.exec_module(module)


def _gate(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from perfgate.report import fit_job_summary, gate_markdown
    from perfgate.results import write_atomically
    from perfgate.upgrade import GatePolicy, exit_status, plan_gate, run_gate

    policy = GatePolicy(
        accuracy_margin=args.accuracy_margin, max_slowdown=args.max_slowdown,
        max_memory_growth=args.max_memory_growth, budget_seconds=args.budget,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="perfgate-gate-") as workdir:
        arms, run = plan_gate(
            current=args.current, candidate=args.candidate or args.current, task=args.task,
            techniques=args.technique or ["fp32-eager"], current_python=args.current_python,
            candidate_python=args.candidate_python or args.current_python, eval_file=args.eval_file,
            sentences=args.sentences, batch_size=args.batch_size, threads=args.threads, device=args.device,
            memory=not args.no_memory, cache_dir=args.cache_dir.expanduser(), workdir=Path(workdir), rootdir=Path.cwd(),
        )  # fmt: skip
        results = [run_gate(current, candidate, run, policy) for current, candidate in arms]
    report = gate_markdown([result.to_dict() for result in results])
    print(report)
    if args.markdown:
        write_atomically(args.markdown, fit_job_summary(report))
    if args.json:
        write_atomically(args.json, json.dumps([result.to_dict() for result in results], indent=1))
    return exit_status(results)


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
    from perfgate.history import rerun_tests

    return lambda nodeids: rerun_tests(nodeids, settings, markexpr=markexpr)


if __name__ == "__main__":
    sys.exit(main())


# The commands whose whole work is one function of the parsed arguments.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "merge": _merge, "join-night": _join_night, "recommend": _recommend, "bisect": _bisect,
    "cross-check": _cross_check, "explain": _explain, "gate": _gate, "thresholds": _thresholds,
}  # fmt: skip
