"""``perfgate cross-check``: each arm of a case timed alone, a fresh process per arm, beside perfgate's interval."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.records.results import RunRecord

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    check = commands.add_parser(
        "cross-check", help="time each arm of a case alone, a fresh process per arm, beside perfgate's interval"
    )
    check.add_argument("--case", required=True, help="MODEL/TECHNIQUE/bBATCH/DEVICE, as results.json names it")
    check.add_argument("--rounds", type=int, default=5, help="rounds of one process per arm, order alternating (5)")
    check.add_argument("--seconds", type=float, default=3.0, help="seconds of single calls per arm and round (3)")
    check.add_argument("--results", type=Path, help="a results.json holding the case: its interval, beside")
    check.add_argument("--markdown", type=Path, help="also write the table here")


def run(args: argparse.Namespace) -> int:
    from perfgate.answers.bisect import parse_case_id, probe_case
    from perfgate.answers.cross_check import cross_check, markdown
    from perfgate.subjects.hardware import detect

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
        from perfgate.records.results import write_atomically

        write_atomically(args.markdown, table + "\n")
    return 0
