"""``perfgate gate``: may a candidate model or environment replace the current one (interleaved, with margins)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    gate = commands.add_parser(
        "gate", help="model or library upgrade: candidate against current, interleaved, with non-inferiority margins"
    )
    gate.add_argument("--current", type=Path, required=True, help="the current model's save_pretrained() directory")
    gate.add_argument("--candidate", type=Path, help="the candidate model's directory (default: --current)")
    gate.add_argument("--current-python", default=sys.executable, help="the current environment's interpreter")
    gate.add_argument("--candidate-python", help="the candidate environment's interpreter (a library upgrade)")
    gate.add_argument("--task", default="feature-extraction", help="feature-extraction, text-classification, ...")
    gate.add_argument("--technique", action="append", help="technique(s) both arms serve with (fp32-eager)")
    gate.add_argument("--eval-file", type=Path, help="labelled set (JSON lines) scoring task accuracy")
    gate.add_argument("--sentences", type=Path, help="timed and compared texts, one per line (default: the set's)")
    gate.add_argument("--batch-size", type=int, default=1)
    gate.add_argument("--threads", type=int)
    gate.add_argument("--device", default="cpu")
    gate.add_argument("--accuracy-margin", type=float, default=0.02, help="largest accuracy loss allowed (0.02)")
    gate.add_argument("--max-slowdown", type=float, default=0.10, help="largest slowdown allowed (0.10)")
    gate.add_argument("--max-memory-growth", type=float, default=0.10, help="largest memory growth allowed (0.10)")
    gate.add_argument("--budget", type=float, default=20.0, help="seconds of ABBA timing per gate (20)")
    gate.add_argument("--no-memory", action="store_true", help="skip the serving-memory check")
    gate.add_argument("--cache-dir", type=Path, default=Path("~/.cache/perfgate"), help="device locks live here")
    gate.add_argument("--markdown", type=Path, help="also write the report here (e.g. $GITHUB_STEP_SUMMARY)")
    gate.add_argument("--json", type=Path, help="also write the verdicts and figures as JSON")


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from perfgate.answers.upgrade import GatePolicy, exit_status, plan_gate, run_gate
    from perfgate.records.results import write_atomically
    from perfgate.reports.gates import gate_markdown
    from perfgate.reports.report import fit_job_summary

    policy = GatePolicy(
        accuracy_margin=args.accuracy_margin, max_slowdown=args.max_slowdown,
        max_memory_growth=args.max_memory_growth, budget_seconds=args.budget,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="perfgate-gate-") as workdir:
        arms, run = plan_gate(
            current=args.current, candidate=args.candidate or args.current, task=args.task,
            techniques=args.technique or ["fp32-eager"], current_python=args.current_python,
            candidate_python=args.candidate_python or args.current_python, eval_file=args.eval_file,
            sentences=args.sentences, batch_size=args.batch_size, threads=args.threads, device=args.device,
            memory=not args.no_memory, cache_dir=args.cache_dir.expanduser(), workdir=Path(workdir), rootdir=Path.cwd(),
        )  # fmt: skip
        results = [run_gate(current, candidate, run, policy) for current, candidate in arms]
    report = gate_markdown([result.to_dict() for result in results])
    print(report)
    if args.markdown:
        write_atomically(args.markdown, fit_job_summary(report))
    if args.json:
        write_atomically(args.json, json.dumps([result.to_dict() for result in results], indent=1))
    return exit_status(results)
