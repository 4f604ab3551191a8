"""``perfgate explain``: a case's candidate profiled against fp32 eager, op by op."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from perfgate.answers.explain import BASELINE

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    explain = commands.add_parser(
        "explain", help="profile a case's candidate against fp32 eager: which ops its time went to, side by side"
    )
    explain.add_argument("--case", required=True, help="MODEL/TECHNIQUE/bBATCH/DEVICE, as results.json names it")
    explain.add_argument("--rounds", type=int, default=8, help="profiled rounds, one block per side, alternating (8)")
    explain.add_argument("--calls", type=int, default=10, help="calls per profiled block (10)")
    explain.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's choice)")
    explain.add_argument("--baseline", default=BASELINE,
                         help="what the case's candidate is set against (fp32-eager), e.g. onnxruntime-o2")  # fmt: skip
    explain.add_argument("--out", type=Path, default=Path("reports/explain"),
                         help="where explain.json, explain.md and each side's trace go (reports/explain)")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import json

    from perfgate.answers.bisect import parse_case_id, probe_case
    from perfgate.answers.explain import explain_case, markdown
    from perfgate.records.results import write_atomically
    from perfgate.subjects.hardware import detect

    target = parse_case_id(args.case)
    probe = probe_case(target, Path.cwd())
    explanation = explain_case(target.case_id, probe, args.out, args.rounds, args.calls, args.threads,
                               baseline=args.baseline)  # fmt: skip
    table = markdown(explanation, detect().hardware_class(target.device))
    write_atomically(args.out / "explain.json", json.dumps(explanation.to_dict(), indent=1) + "\n")
    write_atomically(args.out / "explain.md", table)
    print(table)
    print(f"wrote {args.out / 'explain.md'}, {args.out / 'explain.json'} and a Chrome trace per side")
    return 0
