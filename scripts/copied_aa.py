"""The copied A/A: fp32 MiniLM against a deep copy of itself, timed as the ab-forward scenario times a
case, repeated; the figures behind README "The baseline's weights".

Each run builds a fresh deep copy (the candidate, allocated after the baseline as every technique's
weights are) and compares it with the copied baseline twice, in an order that alternates run to run:
timed from the baseline's own copy alone, and in turn with a copy made after the candidate
(``late_baseline_copy``, what the scenario does). Criterion, declared before the runs: median within
±1 % of 1.0 and at most one interval wholly above 1.0 in 20 runs.

    PYTHONPATH=. .venv/bin/python scripts/copied_aa.py --runs 20 --json reports/copied-aa.json
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
from pathlib import Path

from fixtures.models import minilm_directory
from perfgate.engine.scenarios.ab_forward import late_baseline_copy
from perfgate.instruments.comparison import ComparePolicy, compare
from perfgate.instruments.timing import Timer, torch_threads
from perfgate.subjects.hardware import detect
from perfgate.subjects.model import load_model
from perfgate.subjects.technique import Variant
from perfgate.subjects.techniques.eager import Fp32Eager

SENTENCES = Path(__file__).resolve().parents[1] / "fixtures" / "data" / "sentences.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", type=float, default=0.01, help="stop at this relative half-width")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per comparison")
    parser.add_argument("--json", type=Path, help="write every run's estimates here")
    args = parser.parse_args()

    sentences = [line.strip() for line in SENTENCES.read_text().splitlines() if line.strip()]
    texts = [sentences[i % len(sentences)] for i in range(args.batch_size)]
    rows: list[dict[str, object]] = []
    with torch_threads(None):
        model = load_model("minilm", "feature-extraction", minilm_directory(), "cpu", "copied")
        baseline = Fp32Eager().apply(model, Path("."), None)
        inputs = model.inputs(texts, None)
        payload = {"model": {"placement": "copied"}}
        for run in range(args.runs):
            candidate_model = model.with_module(copy.deepcopy(model.module))
            candidate = Variant("fp32-deep-copy", candidate_model.run, memory_bytes=0, independent_of_source=True)
            turns = late_baseline_copy(payload, model, baseline, candidate)
            assert len(turns) == 1, "the scenario would not time a late copy here"
            row: dict[str, object] = {"run": run}
            order = ("alone", "in_turn") if run % 2 == 0 else ("in_turn", "alone")
            for mode in order:
                policy = ComparePolicy(seed=run, precision=args.precision, budget_seconds=args.budget)
                extra = [functools.partial(turns[0].run, inputs)] if mode == "in_turn" else []
                arms = functools.partial(baseline.run, inputs), functools.partial(candidate.run, inputs)
                result = compare(*arms, Timer(), None, policy, baseline_turns=extra)
                assert result.estimate is not None
                row[mode] = result.estimate.to_dict()
            rows.append(row)
            print(run, {mode: f"{row[mode]['speedup']:.4f} [{row[mode]['ci_low']:.4f}, {row[mode]['ci_high']:.4f}]"
                        for mode in order}, flush=True)  # fmt: skip
    summary = {"class": detect().hardware_class(), "runs": args.runs, "precision": args.precision}
    for mode in ("alone", "in_turn"):
        estimates = [row[mode] for row in rows]
        summary[mode] = {
            "median": statistics.median(e["speedup"] for e in estimates),  # type: ignore[index]
            "wholly_above": sum(e["ci_low"] > 1.0 for e in estimates),  # type: ignore[index]
            "wholly_below": sum(e["ci_high"] < 1.0 for e in estimates),  # type: ignore[index]
        }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
