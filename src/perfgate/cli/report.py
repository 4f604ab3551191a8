"""``perfgate report``: the HTML report of a results.json (and its Markdown summary, its history drawn)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.records.history import load_history
from perfgate.records.regressions import compare_run
from perfgate.records.results import RunRecord, write_atomically

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    report = commands.add_parser("report", help="write the HTML report of a results.json (matplotlib)")
    report.add_argument("results", type=Path)
    report.add_argument("--html", type=Path, required=True, help="the self-contained HTML file to write")
    report.add_argument("--markdown", type=Path, help="also write the Markdown summary (summary.md) here")
    report.add_argument("--history", type=Path, help="also draw each case against this history")


def run(args: argparse.Namespace) -> int:
    from perfgate.reports.html_report import html_report

    record = RunRecord.load(args.results)
    past = load_history(args.history).without(args.results) if args.history else []
    compared = compare_run(record, past) if args.history else None
    write_atomically(args.html, html_report(record, compared, past))
    print(f"wrote {args.html}")
    if args.markdown:
        from perfgate.reports.report import markdown_summary

        write_atomically(args.markdown, markdown_summary(record))
        print(f"wrote {args.markdown}")
    return 0
