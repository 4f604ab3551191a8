"""``perfgate bisect``: the library release or the commit that made a case slower."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.records.results import RunRecord

__all__ = ["add", "run"]


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


def add(commands: Any) -> None:
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


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from perfgate.answers.bisect import (
        CommitBisection,
        ReleaseBisection,
        bisect_commits,
        bisect_releases,
        parse_case_id,
        probe_case,
    )
    from perfgate.records.results import write_atomically
    from perfgate.subjects.catalogue import register_technique, technique_names
    from perfgate.subjects.technique import STACK_SEPARATOR

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
