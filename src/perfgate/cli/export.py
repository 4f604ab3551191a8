"""``perfgate export``: a results.json in pytest-benchmark's JSON format, to a file or a storage directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.records.results import RunRecord

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    export = commands.add_parser("export", help="write a results.json in pytest-benchmark's JSON format")
    export.add_argument("results", type=Path)
    destination = export.add_mutually_exclusive_group(required=True)
    destination.add_argument("--output", type=Path, help="the pytest-benchmark style JSON to write")
    destination.add_argument(
        "--storage", type=Path,
        help="save it as pytest-benchmark's next run in this storage directory (e.g. .benchmarks), where "
        "`pytest-benchmark list` and `pytest-benchmark compare` find it",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    return _export(args.results, args.output, args.storage)


def _export(results: Path, output: Path | None, storage: Path | None) -> int:
    import json

    from perfgate.records.export import storage_path, to_pytest_benchmark
    from perfgate.records.results import write_atomically

    exported = to_pytest_benchmark(RunRecord.load(results))
    if storage is not None:
        output = storage_path(storage)
        output.parent.mkdir(parents=True, exist_ok=True)
    assert output is not None  # argparse requires one of --output and --storage
    write_atomically(output, json.dumps(exported, indent=1))
    print(f"wrote {output}")
    return 0
