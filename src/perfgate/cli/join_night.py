"""``perfgate join-night``: a nightly run joined from its shards, which may have run on different classes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError

__all__ = ["add", "run"]


def add(commands: Any) -> None:
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


def run(args: argparse.Namespace) -> int:
    from perfgate.records.history import load_history
    from perfgate.records.results import write_atomically
    from perfgate.reports.night import join_night, read_shard
    from perfgate.reports.report import fit_job_summary

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
