"""``perfgate merge``: several runners' results in one Markdown report, or one run's shards joined."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.records.results import RunRecord

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    merge = commands.add_parser(
        "merge", help="one report from several runners' results.json files, or one run's shards joined"
    )
    merge.add_argument("results", type=Path, nargs="+")
    merge.add_argument("--output", type=Path, help="write the side-by-side Markdown report of several runners")
    merge.add_argument(
        "--results", dest="joined", type=Path,
        help="join shards of one run (one hardware class) into this results.json, for compare and the report",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from perfgate.records.results import write_atomically
    from perfgate.reports.merge import join_shards, merged_markdown

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
