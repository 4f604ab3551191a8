"""``perfgate recommend``: which technique or stack to ship per model and batch size, under limits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.records.results import RunRecord

__all__ = ["add", "run"]


def add(commands: Any) -> None:
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


def run(args: argparse.Namespace) -> int:
    import json

    from perfgate.answers.recommend import Limits, markdown, most_excluding_limit, recommend
    from perfgate.records.results import write_atomically

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
