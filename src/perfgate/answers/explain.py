"""``perfgate explain``: which operators a case's candidate spends its time in, against fp32 eager (or
another technique, ``--baseline``), side by side: the step from "this gate failed" to "this op got slower".

Both sides run in one fresh process, as the A/B does: the model loaded once, fp32 eager and the
technique's variant built from it, warmed up, then ``rounds`` rounds of one profiled block per side
(``calls`` calls each, the order alternating round by round, so drift hits both), each block under
``torch.profiler`` with input shapes recorded. An op is its name and input shapes; its figure per side
is its self time per call in each round (an ONNX Runtime session's own nodes from ORT's profiler,
``ort::MatMul`` and the like, which ``torch.profiler`` cannot see inside the session): its median over
the rounds, with a seeded percentile-bootstrap interval (the median, not the mean: one round that a
neighbour's burst slowed must not move the diff). The diff sets the sides' ops beside each other, names
the ops that appear or vanish, and lists the largest changes until they explain at least
``EXPLAINED_SHARE`` of the whole change; what the listed ones leave is said.

Profiling costs time per op, so absolute figures read higher than a timed call; the diff is between
two sides profiled alike. A Chrome trace of each side's last block is written beside the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from perfgate.errors import PerfgateError
from perfgate.instruments.profiling import (
    OpTimes,
    alternate_rounds,
    as_json,
    from_json,
    profile_block,
    runtime_op_rounds,
)

__all__ = [
    "EXPLAINED_SHARE", "Explanation", "OpChange", "diff", "explain_case", "explain_failed_gates", "markdown",
]  # fmt: skip

BASELINE = "fp32-eager"
SIDES = ("baseline", "candidate")
EXPLAINED_SHARE = 0.8  # the listed ops explain at least this much of the change between the sides
BOOTSTRAP_RESAMPLES = 2000


@dataclass
class OpChange:
    """One op (name and input shapes) on both sides: self seconds per call, mean over rounds [interval]."""

    name: str
    shapes: str
    baseline: tuple[float, float, float]  # median over rounds, low, high
    candidate: tuple[float, float, float]
    change: float  # candidate - baseline, seconds per call
    share: float  # of the whole change
    status: str  # "slower", "faster", "appeared", "vanished"

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Explanation:
    case_id: str
    rounds: int
    calls: int
    totals: dict[str, tuple[float, float, float]]  # self seconds per call over all ops, per side
    ops: list[OpChange] = field(default_factory=list)  # largest |change| first
    listed: int = 0  # the first ``listed`` ops explain at least EXPLAINED_SHARE of the change
    seconds: float = 0.0  # what the explanation cost, from start to diff
    traces: dict[str, str] = field(default_factory=dict)
    baseline: str = BASELINE  # the technique the candidate is set against (or the code, ``compare --explain``)
    candidate: str = "candidate"  # how the tables name the other side

    @property
    def baseline_label(self) -> str:
        return "fp32 eager" if self.baseline == BASELINE else self.baseline

    @property
    def change(self) -> float:
        return self.totals["candidate"][0] - self.totals["baseline"][0]

    @property
    def unexplained(self) -> float:
        """What the listed ops leave of the whole change, seconds per call."""
        return self.change - sum(op.change for op in self.ops[: self.listed])

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id, "rounds": self.rounds, "calls": self.calls,
            "totals": {side: list(value) for side, value in self.totals.items()}, "change": self.change,
            "listed": self.listed, "unexplained": self.unexplained, "seconds": self.seconds, "traces": self.traces,
            "baseline": self.baseline, "candidate": self.candidate,
            "ops": [op.to_dict() for op in self.ops],
        }  # fmt: skip


def _interval(values: Sequence[float], seed: int = 0) -> tuple[float, float, float]:
    """The median over rounds and its 95% percentile-bootstrap interval."""
    data = np.asarray(values, dtype=float)
    middle = float(np.median(data))
    if len(data) < 2:
        return middle, middle, middle
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(BOOTSTRAP_RESAMPLES, len(data)), replace=True), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return middle, float(low), float(high)


def diff(case_id: str, samples: Mapping[str, list[dict[tuple[str, str], float]]], calls: int) -> Explanation:
    """The sides' ops set beside each other (``samples``: ``profile_rounds``' answer, sides ``baseline``
    and ``candidate``), largest change first."""
    rounds = min(len(samples[side]) for side in SIDES)
    keys = sorted({key for side in SIDES for per_op in samples[side] for key in per_op})
    totals = {side: _interval([sum(per_op.values()) for per_op in samples[side]]) for side in SIDES}
    change = totals["candidate"][0] - totals["baseline"][0]
    ops = []
    for name, shapes in keys:
        figures = {side: _interval([per_op.get((name, shapes), 0.0) for per_op in samples[side]]) for side in SIDES}
        before, after = figures["baseline"][0], figures["candidate"][0]
        status = (
            "appeared" if before == 0.0 else "vanished" if after == 0.0 else "slower" if after > before else "faster"
        )
        ops.append(OpChange(name, shapes, figures["baseline"], figures["candidate"], after - before,
                            (after - before) / change if change else 0.0, status))  # fmt: skip
    # Listed in the direction of the whole change: a slower side's ops that took longer first.
    ops.sort(key=lambda op: -op.change if change >= 0 else op.change)
    explanation = Explanation(case_id, rounds, calls, totals, ops)
    explained = 0.0
    for op in ops:
        if change == 0 or explained >= EXPLAINED_SHARE * abs(change) or op.change * change <= 0:
            break
        explained += abs(op.change)
        explanation.listed += 1
    # After the ops that explain the change, the rest by how much they moved either way (a kernel that
    # vanished from the faster side's profile is news too).
    explanation.ops[explanation.listed :] = sorted(ops[explanation.listed :], key=lambda op: -abs(op.change))
    return explanation


def markdown(explanation: Explanation, hardware_class: str, top: int = 15) -> str:
    """The diff as a table: the ops that explain the change first, then the next largest, then what the
    listed ones leave; ops that appeared or vanished say so."""
    us = 1e6
    base, cand = explanation.totals["baseline"], explanation.totals["candidate"]
    lines = [
        f"### `{explanation.case_id}`: where the time went ({hardware_class})",
        "",
        f"Self time per call, profiled: {explanation.baseline_label} {base[0] * us:.0f} µs "
        f"[{base[1] * us:.0f}, {base[2] * us:.0f}], "
        f"{explanation.candidate} {cand[0] * us:.0f} µs [{cand[1] * us:.0f}, {cand[2] * us:.0f}]: "
        f"{explanation.change * us:+.0f} µs a call. {explanation.rounds} rounds of {explanation.calls} calls per "
        f"side, alternating; intervals over the rounds. Took {explanation.seconds:.0f} s.",
        "",
        f"| op | input shapes | {explanation.baseline_label} µs | {explanation.candidate} µs | change µs "
        "| share of the change | |",
        "|---|---|---|---|---|---|---|",
    ]
    for index, op in enumerate(explanation.ops[: max(top, explanation.listed)]):
        mark = "**explains**" if index < explanation.listed else ""
        lines.append(
            f"| `{op.name}` | {_shapes(op.shapes)} | {_figure(op.baseline)} | {_figure(op.candidate)} | "
            f"{op.change * us:+.1f} | {op.share:.0%} | {op.status} {mark} |"
        )
    share = explanation.unexplained / explanation.change if explanation.change else 0.0
    lines += [
        "",
        f"The first {explanation.listed} ops explain {1 - share:.0%} of the change; the other "
        f"{len(explanation.ops) - explanation.listed} leave {explanation.unexplained * us:+.0f} µs a call "
        f"({share:.0%}).",
    ]
    return "\n".join(lines) + "\n"


def _figure(value: tuple[float, float, float]) -> str:
    mean, low, high = (v * 1e6 for v in value)
    return "-" if mean == 0 else f"{mean:.1f} [{low:.1f}, {high:.1f}]"


def _shapes(shapes: str) -> str:
    return "-" if shapes in ("[]", "") else f"`{shapes}`" if len(shapes) <= 60 else f"`{shapes[:57]}...`"


def explain_case(
    case_id: str, probe: dict[str, Any], out: Path, rounds: int = 8, calls: int = 10, threads: int | None = None,
    python: str = sys.executable, baseline: str = BASELINE,
) -> Explanation:  # fmt: skip
    """Both sides of a gate's case profiled in one fresh process (``side_main``), then the diff; the
    traces and ``explain.json`` in ``out``."""
    from perfgate.answers.bisect import parse_case_id

    if rounds < 2 or calls < 1:
        raise PerfgateError(f"--rounds={rounds} --calls={calls}: at least 2 rounds (an interval) and 1 call")
    target = parse_case_id(case_id)
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="perfgate-explain-") as workdir:
        request = {
            "location": probe["location"], "task": probe["task"], "model": target.model, "device": target.device,
            "technique": target.technique, "technique_path": probe.get("technique_path"),
            "texts": probe["timed_texts"][: target.batch_size], "rounds": rounds, "calls": calls,
            "workdir": workdir, "traces": str(out), "threads": threads, "baseline": baseline,
        }  # fmt: skip
        # The process imports what this one can (a project's techniques, registered from its conftest)
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in sys.path if path)}
        done = subprocess.run([python, "-m", "perfgate.answers.explain", json.dumps(request)], capture_output=True,
                              text=True, check=False, env=environment)  # fmt: skip
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
            raise PerfgateError(f"{case_id}: profiling both sides failed (exit {done.returncode}): {tail}")
    answer = json.loads(lines[-1])
    samples = {side: from_json(rounds_) for side, rounds_ in answer.items()}
    explanation = diff(case_id, samples, calls)
    explanation.seconds = time.monotonic() - started
    explanation.traces = {side: str(out / f"{side}.trace.json") for side in SIDES}
    explanation.baseline = baseline
    return explanation


def explain_failed_gates(session: Any) -> list[str]:
    """``--perfgate-explain N``: the N slowest cases of the session's run that failed a speed gate, each
    profiled against fp32 eager op by op (``explain_case``); the diff kept in the case
    (``metrics["explain"]``), the traces beside the report. What it cost is said per case."""
    record, settings = session.recorder.record, session.settings
    if record is None or not settings.explain:
        return []
    failed = [case for case in record.cases if case.spec.scenario == "ab-forward"
              and any(check.name == "speed" for check in case.failures())]  # fmt: skip
    failed.sort(key=lambda case: case.metrics["speed"]["estimate"]["speedup"])
    lines = []
    for case in failed[: settings.explain]:
        spec = case.spec
        out = settings.report_dir / "explain" / spec.case_id.replace("/", "_")
        try:
            probe = session.runner.probe(spec.model, spec.technique, spec.batch_size)
            explanation = explain_case(spec.case_id, probe, out, threads=spec.threads)
        except PerfgateError as error:
            lines.append(f"{spec.case_id}: not explained: {error}")
            continue
        case.metrics["explain"] = {**explanation.to_dict(), "markdown": markdown(explanation, case.hardware_class)}
        lines.append(f"{spec.case_id}: explained in {explanation.seconds:.0f} s ({out})")
    session.recorder.save()
    return lines


def side_main(request: dict[str, Any]) -> dict[str, list[dict[str, float]]]:
    """Both sides in this process: the model, fp32 eager and the technique's variant, warmed up, then
    profiled round by round."""
    import torch

    from perfgate.instruments.timing import Timer
    from perfgate.subjects.catalogue import get_technique, register_technique
    from perfgate.subjects.model import load_model
    from perfgate.subjects.technique import RUNTIME_PROFILE_ENV

    if request["technique_path"] and "+" not in request["technique"]:
        register_technique(request["technique"], request["technique_path"])  # a project's own technique
    if request.get("threads"):
        torch.set_num_threads(request["threads"])  # the run's --perfgate-threads, as its A/B had
    model = load_model(request["model"], request["task"], Path(request["location"]), request["device"])
    names = (request.get("baseline") or BASELINE, request["technique"])
    variants = {}
    for side, name in zip(SIDES, names, strict=True):
        # a runtime that profiles its own operators (ONNX Runtime) writes them here, a file per side
        os.environ[RUNTIME_PROFILE_ENV] = str(Path(request["workdir"]) / f"{side}-runtime")
        variants[side] = get_technique(name).apply(model, Path(request["workdir"]), None)
    del os.environ[RUNTIME_PROFILE_ENV]
    inputs = model.inputs(request["texts"])
    timer = Timer()

    def caller(side: str) -> Callable[[], object]:
        def call() -> object:
            with torch.inference_mode():
                return variants[side].run(inputs)

        return call

    calls = {side: caller(side) for side in SIDES}
    for call in calls.values():
        timer.warm_up(call)
    traces = Path(request["traces"])

    def block(side: str) -> Callable[[bool], OpTimes]:
        return lambda last: profile_block(
            calls[side], request["calls"], (traces / f"{side}.trace.json") if last else None, request["device"]
        )

    found = alternate_rounds({side: block(side) for side in SIDES}, request["rounds"])
    for side, variant in variants.items():
        if variant.end_profiling is not None:  # its own nodes, beside the torch ops around the session
            events = json.loads(Path(variant.end_profiling()).read_text())
            for per_op, runtime in zip(found[side], runtime_op_rounds(events, request["rounds"], request["calls"]),
                                       strict=True):  # fmt: skip
                per_op.update(runtime)
    return {side: as_json(rounds) for side, rounds in found.items()}


if __name__ == "__main__":
    print(json.dumps(side_main(json.loads(sys.argv[1]))))
