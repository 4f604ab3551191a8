"""``perfgate gpus``: the GPUs the plugin will run the gpu cases on, checked against torch."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    gpus = commands.add_parser(
        "gpus", help="the GPUs the plugin will run the gpu cases on (its own detection, checked against torch)"
    )
    gpus.add_argument(
        "--require", action="store_true", help="exit 1 when there is none, or when torch sees another count"
    )


def run(args: argparse.Namespace) -> int:
    return _gpus(args.require)


def _gpus(require: bool) -> int:
    from perfgate.subjects.hardware import detect_gpus, visible_gpus_report

    try:
        import torch

        torch_sees: int | None = torch.cuda.device_count()
    except ImportError:
        torch_sees = None
    found, message = visible_gpus_report(detect_gpus(), torch_sees)
    print(message, file=sys.stdout if found else sys.stderr)
    return 0 if found or not require else 1
