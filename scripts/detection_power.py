#!/usr/bin/env python3
"""How well the history sees a change, measured with real runs on this machine.

Runs the given tests (``--case``, repeatable; by default the MiniLM int8 cases at batch 1)
``stored + unchanged + 1`` times, each a fresh pytest process measuring to the nightly's precision
(tests with a budget of their own, ``--case-budget NODEID=SECONDS``, in a process of their own). The first
``stored`` runs are the history. Then:

- false alerts: each unchanged run is compared with the history; a flagged case counts as *confirmed*
  only when the next run (an independent re-measurement, as ``compare --confirm`` makes) is flagged too;
- detection: each unchanged run with one case's speedup (and its interval) scaled by a factor is
  compared; the smallest change flagged in at least 9 of 10 runs is reported per case, with the
  fraction flagged at ``--scale`` (0.85 by default);
- cost: the wall time per case the precision took.

    .venv/bin/python scripts/detection_power.py [--case NODEID ...] [--budget 20] [--case-budget NODEID=S ...]
        [--stored 6] [--unchanged 10] [--precision 0.03] [--work DIR]

Writes DIR/detection-power.md and .json; the README quotes the figures of the class it ran on.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from pathlib import Path

from perfgate.records.history import History
from perfgate.records.regressions import Status, compare_run
from perfgate.records.results import RunRecord, merge_records

CASES = (
    "perf/test_onnxruntime.py::test_onnxruntime_pays_off_for_single_sequences[minilm-onnxruntime-o2-int8-dynamic]",
    "perf/test_torch_dynamic_int8.py::test_dynamic_int8_pays_off_on_encoders[minilm-torch-dynamic-int8-per-tensor]",
)
SCALES = [round(1 - step / 100, 2) for step in range(2, 31)]  # 0.98 down to 0.70


def measure(work: Path, index: int, precision: float, budgets: dict[float, list[str]]) -> RunRecord:
    """One night: a pytest process per budget, their records joined (the nightly's -m, so slow tests run)."""
    parts = []
    for budget, cases in sorted(budgets.items()):
        report = work / f"run-{index:02d}" / f"budget-{budget:g}"
        results = report / "results.json"
        if not results.exists():  # resumable: an interrupted study keeps its runs
            command = [sys.executable, "-m", "pytest", *cases, f"--perfgate-precision={precision}",
                       f"--perfgate-budget={budget}", "--perfgate-memory=off", f"--perfgate-report-dir={report}",
                       "-m", "slow or not slow", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]  # fmt: skip
            started = time.monotonic()
            subprocess.run(command, check=False, capture_output=True)
            print(f"run {index}, budget {budget:g} s: {time.monotonic() - started:.0f} s", file=sys.stderr)
        parts.append(RunRecord.load(results))
    return merge_records(parts)


def scaled(record: RunRecord, case_id: str, factor: float) -> RunRecord:
    changed = copy.deepcopy(record)
    for case in changed.cases:
        if case.spec.case_id == case_id:
            estimate = case.metrics["speed"]["estimate"]
            for key in ("speedup", "ci_low", "ci_high"):
                estimate[key] *= factor
    return changed


def flagged(record: RunRecord, history: History) -> set[str]:
    return {c.case_id for c in compare_run(record, history).cases if c.status == Status.REGRESSION}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", default=[], help="a test's node id (repeatable)")
    parser.add_argument("--case-budget", action="append", default=[], metavar="NODEID=SECONDS",
                        help="a budget of its own for one of the cases (a training step needs more)")  # fmt: skip
    parser.add_argument("--stored", type=int, default=6)
    parser.add_argument("--unchanged", type=int, default=10)
    parser.add_argument("--precision", type=float, default=0.03)
    parser.add_argument("--budget", type=float, default=20.0)
    parser.add_argument("--scale", type=float, default=0.85)
    parser.add_argument("--work", type=Path, default=Path("reports/detection-power"))
    args = parser.parse_args()
    own = dict(item.rsplit("=", 1) for item in args.case_budget)
    budgets: dict[float, list[str]] = {}
    for case in args.case or list(CASES):
        budgets.setdefault(float(own.get(case, args.budget)), []).append(case)
    records = [measure(args.work, i, args.precision, budgets) for i in range(args.stored + args.unchanged + 1)]
    runs = [(args.work / f"run-{i:02d}", record) for i, record in enumerate(records)]
    history = History(runs[: args.stored])
    unchanged = [record for _, record in runs[args.stored :]]
    case_ids = sorted({c.spec.case_id for c in unchanged[0].cases})
    checked = unchanged[:-1]  # the last run only re-measures the one before it
    false_alerts = {case_id: [0, 0] for case_id in case_ids}  # unconfirmed, confirmed
    for record, again in zip(checked, unchanged[1:], strict=True):
        repeat = flagged(again, history)
        for case_id in flagged(record, history):
            false_alerts[case_id][case_id in repeat] += 1
    detection = {}
    for case_id in case_ids:
        caught = {
            scale: sum(case_id in flagged(scaled(r, case_id, scale), history) for r in checked) for scale in SCALES
        }
        smallest = next((1 - s for s in SCALES if caught[s] >= 0.9 * len(checked)), None)
        at_scale = sum(case_id in flagged(scaled(r, case_id, args.scale), history) for r in checked)
        seconds = [c.wall_seconds for _, r in runs for c in r.cases if c.spec.case_id == case_id]
        found = [c for _, r in runs for c in r.cases if c.spec.case_id == case_id]
        speedups = [estimate for c in found if (estimate := c.metrics.get("speed", {}).get("estimate"))]
        detection[case_id] = {
            "smallest_change_caught_9_in_10": smallest,
            f"caught_at_x{args.scale}": f"{at_scale}/{len(checked)}",
            "false_alerts_unconfirmed": false_alerts[case_id][0],
            "false_alerts_confirmed": false_alerts[case_id][1],
            "case_nights": len(checked),
            "wall_seconds_median": sorted(seconds)[len(seconds) // 2],
            "speedups": [round(e["speedup"], 3) for e in speedups],
            "half_widths": [round((e["ci_high"] / e["ci_low"]) ** 0.5 - 1, 4) for e in speedups],
            "pairs": [e.get("pairs") for e in speedups],
        }
    fingerprint = runs[0][1].fingerprint
    lines = [
        f"# Detection power on {fingerprint['hardware_class']['cpu']} ({fingerprint.get('cpu', {}).get('model')})",
        "",
        f"{args.stored} stored runs, {len(checked)} unchanged runs compared (each confirmed by the next), "
        f"precision ±{args.precision:.0%}, budget {args.budget:g} s per case"
        + "".join(f", {seconds} s for `{case}`" for case, seconds in own.items())
        + ".",
        "",
        "| case | smallest change caught ≥ 9/10 | caught at "
        f"x{args.scale} | false alerts (unconfirmed / confirmed) per {len(checked)} case-nights | s per case |",
        "|---|---|---|---|---|",
    ]
    for case_id, found in detection.items():
        smallest = found["smallest_change_caught_9_in_10"]
        lines.append(
            f"| `{case_id}` | {'-' if smallest is None else f'{smallest:.0%}'} | {found[f'caught_at_x{args.scale}']} "
            f"| {found['false_alerts_unconfirmed']} / {found['false_alerts_confirmed']} "
            f"| {found['wall_seconds_median']:.0f} |"
        )
    (args.work / "detection-power.md").write_text("\n".join(lines) + "\n")
    (args.work / "detection-power.json").write_text(json.dumps(detection, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
