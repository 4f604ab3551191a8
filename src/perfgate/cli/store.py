"""``perfgate store``: a results.json added to the history (append-only)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.records.history import store_run

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    store = commands.add_parser("store", help="add a results.json to the history (append-only)")
    store.add_argument("results", type=Path)
    store.add_argument("--history", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    args.history.mkdir(parents=True, exist_ok=True)
    print(f"stored {store_run(args.results, args.history)}")
    return 0
