"""``perfgate cross-check``: each arm of a case timed alone, in a fresh process of its own, at the
runtimes' defaults, to set beside perfgate's in-process interval.

perfgate times both arms in one process, interleaved (drift hits both alike, the interval is tight). An
independent harness times each arm alone, one process after another. The two should agree where
perfgate measures as deployed; where they do not, the difference is a setting or an interaction worth
naming (issue 42: ORT's spinning, off in perfgate until 2026-12-07, moved ORT's latency by 20-45 %).

Per round, one process per arm (the order alternates round by round, so a machine that slows down
over the rounds hits both): the model loaded as ``from_pretrained`` leaves it (mapped weights, torch's
own thread count), the variant built at its runtime's defaults, warmed up with perfgate's timer, then
single calls timed for ``seconds``; the arm's figure is its median call. A round's ratio is fp32's median
over the technique's; the rounds' spread is how much the ratio moves between processes, which an
in-process interval does not say.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.answers.bisect import CaseTarget
from perfgate.errors import PerfgateError

__all__ = ["CrossCheck", "cross_check", "markdown"]

BASELINE = "fp32-eager"


@dataclass
class CrossCheck:
    target: CaseTarget
    rounds: list[dict[str, float]] = field(default_factory=list)  # fp32 and technique median call, ratio

    @property
    def ratios(self) -> list[float]:
        return [r["ratio"] for r in self.rounds]

    def summary(self) -> dict[str, float]:
        ratios = self.ratios
        return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def cross_check(
    target: CaseTarget, probe: dict[str, Any], rounds: int = 5, seconds: float = 3.0, python: str = sys.executable
) -> CrossCheck:
    """``rounds`` rounds of both arms, each in a fresh process (``arm_main``), alternating which goes first."""
    if rounds < 1:
        raise PerfgateError(f"--rounds={rounds}: at least one round")
    check = CrossCheck(target)
    texts = probe["timed_texts"]
    with tempfile.TemporaryDirectory(prefix="perfgate-cross-check-") as workdir:
        for number in range(rounds):
            order = (BASELINE, target.technique) if number % 2 == 0 else (target.technique, BASELINE)
            medians = {arm: _arm(arm, target, probe, texts, seconds, workdir, python) for arm in order}
            ratio = medians[BASELINE] / medians[target.technique]
            check.rounds.append({"fp32_seconds": medians[BASELINE], "technique_seconds": medians[target.technique],
                                 "ratio": ratio})  # fmt: skip
    return check


def _arm(
    technique: str, target: CaseTarget, probe: dict[str, Any], texts: list[str], seconds: float, workdir: str,
    python: str,
) -> float:  # fmt: skip
    request = {
        "location": probe["location"], "task": probe["task"], "model": target.model, "device": target.device,
        "technique": technique, "technique_path": probe["technique_path"] if technique == target.technique else None,
        "texts": texts, "seconds": seconds, "workdir": workdir,
    }  # fmt: skip
    done = subprocess.run([python, "-m", "perfgate.answers.cross_check", json.dumps(request)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        raise PerfgateError(f"{target.case_id}: the {technique} arm failed alone (exit {done.returncode}): {tail}")
    return float(json.loads(lines[-1])["median_seconds"])


def arm_main(request: dict[str, Any]) -> dict[str, Any]:
    """One arm alone: its model, its variant at the runtime's defaults, single calls timed."""
    import torch

    from perfgate.instruments.timing import Timer
    from perfgate.subjects.catalogue import get_technique, register_technique
    from perfgate.subjects.model import load_model

    if request["technique_path"] and "+" not in request["technique"]:
        register_technique(request["technique"], request["technique_path"])  # a project's own technique
    model = load_model(request["model"], request["task"], Path(request["location"]), request["device"])
    variant = get_technique(request["technique"]).apply(model, Path(request["workdir"]), None)
    inputs = model.inputs(request["texts"])
    timer = Timer()

    def call() -> object:
        with torch.inference_mode():
            return variant.run(inputs)

    timer.warm_up(call)
    times: list[float] = []
    start = timer.clock()
    while timer.clock() - start < request["seconds"] or len(times) < 5:
        times.append(timer.time_block(call, 1))
    return {"median_seconds": statistics.median(times), "calls": len(times), "settings": variant.settings}


def markdown(check: CrossCheck, in_process: dict[str, float] | None, hardware_class: str) -> str:
    """The table row a README or a note quotes: separate processes beside perfgate's interval."""
    s = check.summary()
    rounds = ", ".join(f"{r:.2f}" for r in check.ratios)
    lines = [
        "| case | each arm alone, median of rounds (rounds) | perfgate in one process [95% CI] | interval holds it |",
        "|---|---|---|---|",
    ]
    if in_process is None:
        perfgate, holds = "not given (--results)", "-"
    else:
        perfgate = f"{in_process['speedup']:.2f}x [{in_process['ci_low']:.2f}, {in_process['ci_high']:.2f}]"
        holds = "yes" if in_process["ci_low"] <= s["median"] <= in_process["ci_high"] else "**no**"
    lines.append(
        f"| `{check.target.case_id}` ({hardware_class}) | {s['median']:.2f}x ({rounds}) | {perfgate} | {holds} |"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    print(json.dumps(arm_main(json.loads(sys.argv[1]))))
