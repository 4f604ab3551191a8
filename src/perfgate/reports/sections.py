"""The sections of summary.md beside its table: ungated fields, changed settings, the spread between
processes, where the time went, the ladder of techniques on one model, and stacks against their parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from perfgate.engine.record import CaseResult
from perfgate.instruments.outcome import Outcome, Verdict

if TYPE_CHECKING:
    from perfgate.records.regressions import Comparison

__all__ = [
    "ARMS_ORDER",
    "LADDER_CLAIMS",
    "between_process_section",
    "isolation_line",
    "ladder_section",
    "settings_section",
    "speed_estimate",
    "stack_lines",
    "time_section",
    "ungated_fields",
    "ungated_lines",
    "ungated_techniques",
]


def ungated_techniques(cases: Sequence[CaseResult]) -> dict[str, list[str]]:
    """Hardware class -> techniques whose speed, memory and other hardware-dependent figures have no
    threshold on it (measured and recorded; their fidelity and sizes are still judged)."""
    found: dict[str, set[str]] = {}
    for case in cases:
        if case.verdict == Verdict.UNGATED:
            found.setdefault(case.hardware_class, set()).add(case.spec.technique)
    return {hardware_class: sorted(found[hardware_class]) for hardware_class in sorted(found)}


def ungated_lines(cases: Sequence[CaseResult]) -> list[str]:
    """What was measured but not judged, one line each: whole techniques, then single fields."""
    lines = [
        f"hardware class {hardware_class} has no speed or memory thresholds for {', '.join(techniques)}: "
        "measured and recorded (UNGATED); fidelity and sizes judged"
        for hardware_class, techniques in ungated_techniques(cases).items()
    ]
    lines += [
        f"{name} is measured but not gated on {hardware_class} ({count} cases): no threshold for that class"
        for (name, hardware_class), count in ungated_fields(cases).items()
    ]
    return lines


def ungated_fields(cases: Sequence[CaseResult]) -> dict[tuple[str, str], int]:
    """(threshold field, hardware class) -> cases that measured it without a threshold, on gated classes."""
    counts: dict[tuple[str, str], int] = {}
    for case in cases:
        if case.verdict == Verdict.UNGATED:
            continue  # the whole class is ungated, said once above
        for name in case.ungated:
            counts[(name, case.hardware_class)] = counts.get((name, case.hardware_class), 0) + 1
    return dict(sorted(counts.items()))


ARMS_ORDER = ("baseline", "candidate")


def settings_section(cases: Sequence[CaseResult]) -> list[str]:
    """Every runtime setting the harness or a variant set away from its default, once, with the cases it
    applied to; and the settle gaps that kept each runtime's after-call spinning out of the other arm."""
    applied: dict[tuple[str, str, str, str], list[str]] = {}
    for case in cases:
        for setting in (case.variant or {}).get("settings", []):
            key = (setting["name"], setting["value"], setting["default"], setting["why"])
            applied.setdefault(key, []).append(case.spec.case_id)
    gaps = []
    for case in cases:
        spin = case.metrics.get("speed", {}).get("spin_after_call_seconds") or {}
        if any(spin.values()):
            arms = [
                f"{spin[arm] * 1000:.0f}" if spin.get(arm) is not None else "-" for arm in ("baseline", "candidate")
            ]
            gaps.append(f"| `{case.spec.case_id}` | {arms[0]} | {arms[1]} |")
    if not applied and not gaps:
        return []
    total = len([c for c in cases if c.variant])
    out = ["## Settings changed from the runtimes' defaults", "",
           "Everything else runs at each runtime's defaults, as it would be deployed.", "",
           "| setting | measured with | default | why | cases |", "|---|---|---|---|---|"]  # fmt: skip
    for (name, value, default, why), ids in applied.items():
        where = (
            f"all {total}"
            if len(ids) == total
            else ", ".join(f"`{i}`" for i in ids[:4]) + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")
        )
        out.append(f"| {name} | {value} | {default} | {why} | {where} |")
    if gaps:
        out += ["", "A runtime's threads keep a core busy for a while after a call (ONNX Runtime's pool spins by "
                "default): the other arm's block starts after twice that, spent in its own untimed calls.", "",
                "| case | baseline busy after a call, ms | candidate, ms |", "|---|---|---|", *gaps]  # fmt: skip
    return out


def between_process_section(cases: Sequence[CaseResult], comparison: Comparison | None = None) -> list[str]:
    """How far each speedup moved between processes beside the interval this run measured in one.

    A case's interval comes from its pairs in one worker process: how well the ratio is known there.
    Between processes a ratio moves more (a CPU's frequency, where the pages landed, the neighbours): the
    history's past runs of the case show how much, where the run was compared with one."""
    timed = [case for case in cases if speed_estimate(case)]
    if not timed:
        return []
    out = ["## Between processes", "",
           "Each speedup's 95% interval says how well the ratio is known inside this run's worker process "
           "(its interleaved pairs), not how far it moves from one process to the next."]  # fmt: skip
    past = {}
    for compared in comparison.cases if comparison else []:
        for figure in compared.figures:
            if figure.name == "speedup" and figure.past_low is not None and figure.past_high is not None:
                past[compared.case_id] = (figure, figure.past_low, figure.past_high)
    if not past:
        out[-1] += (
            " Run with `--perfgate-history DIR` to see each case's spread over its past runs here, or `perfgate "
            "cross-check` for each arm timed in a process of its own (the README's table: 4-13 % apart from the "
            "in-process figure on the main job's ORT, int8 and cast cases)."
        )
        return out
    out += ["", "| case | this run [95% CI] | past runs: median, range | runs | spread between runs | "
            "past range inside this interval |", "|---|---|---|---|---|---|"]  # fmt: skip
    for case in timed:
        if case.spec.case_id not in past:
            continue
        figure, low, high = past[case.spec.case_id]
        estimate = speed_estimate(case) or {}
        spread = (high - low) / figure.reference if figure.reference else 0.0
        inside = estimate["ci_low"] <= low and high <= estimate["ci_high"]
        out.append(
            f"| `{case.spec.case_id}` | {estimate['speedup']:.2f}x [{estimate['ci_low']:.2f}, "
            f"{estimate['ci_high']:.2f}] | {figure.reference:.2f}x, {low:.2f}-{high:.2f} | "
            f"{figure.runs} | {spread:.0%} | {'yes' if inside else 'no'} |"
        )
    return out


def time_section(cases: Sequence[CaseResult], slowest: int = 10) -> list[str]:
    """Where the run's time went: per test module, then the slowest cases split into setup, memory
    jobs and measurement (what to move to the nightly selection when the default run grows)."""
    timed = [case for case in cases if case.wall_seconds > 0]
    if not timed:
        return []
    modules: dict[str, float] = {}
    for case in timed:
        module = case.nodeid.split("::")[0] or "(no test)"
        modules[module] = modules.get(module, 0.0) + case.wall_seconds
    total = sum(modules.values())
    out = ["", "## Where the time went", "", f"{total:.0f} s in {len(timed)} cases.", ""]
    out += ["| test module | wall s | share |", "|---|---|---|"]
    out += [f"| {m} | {t:.0f} | {t / total:.0%} |" for m, t in sorted(modules.items(), key=lambda kv: -kv[1])]
    out += ["", f"The {min(slowest, len(timed))} slowest cases:", ""]
    out += ["| case | wall s | setup s | memory s | measurement s |", "|---|---|---|---|---|"]
    for case in sorted(timed, key=lambda c: -c.wall_seconds)[:slowest]:
        split = case.time_split()
        out.append(
            f"| `{case.spec.case_id}` | {case.wall_seconds:.1f} | {split['setup']:.1f} | {split['memory']:.1f} | "
            f"{split['measurement']:.1f} |"
        )
    return out


def isolation_line(cases: Sequence[CaseResult]) -> str:
    """What process isolation cost the run, outside the timed blocks."""
    jobs = [job for case in cases for job in case.worker.get("jobs", [])]
    processes = len({job["pid"] for job in jobs if "pid" in job})
    starts = sum(job.get("start_seconds", 0.0) for job in jobs)
    loads = sum(job.get("load_seconds", 0.0) for job in jobs)
    return (
        f"isolation: {len(jobs)} worker jobs in {processes} processes; {starts:.1f} s starting workers and "
        f"{loads:.1f} s loading models and building variants, outside the timed blocks"
    )


def speed_estimate(case: CaseResult) -> dict[str, float] | None:
    """The case's speedup estimate (speedup, ci_low, ci_high...), or None where it has no result."""
    found: dict[str, float] | None = case.metrics.get("speed", {}).get("estimate")
    return found if case.outcome == Outcome.MEASURED and found else None


# The production ladder as a well-known BERT-serving write-up reports it: BERT-base on CPU at batch 1.
LADDER_CLAIMS = {
    "fixed": "330 ms (BERT-base, padded to 128)",
    "distilled": "171 ms (a distilled student)",
    "dynamic": "69 ms (no padding)",
    "int8": "10 ms (dynamic int8)",
    "onnxruntime": "— (not a separate step there)",
    "cache": "2x throughput at a 40% hit rate",
}


def _case(cases: Sequence[CaseResult], model: str, technique: str, scenario: str = "ab-forward") -> CaseResult | None:
    found = [c for c in cases if (c.spec.model, c.spec.technique, c.spec.batch_size, c.spec.scenario)
             == (model, technique, 1, scenario) and c.outcome == Outcome.MEASURED]  # fmt: skip
    return found[-1] if found else None


def ladder_section(cases: Sequence[CaseResult], model: str = "minilm") -> list[str]:
    """The production ladder on ``model`` at batch 1, from this run's cases: fixed padding → dynamic
    shapes → int8 → ONNX Runtime int8 → a result cache, each step's latency and gain beside the write-up's."""
    padded = _case(cases, model, "pad-to-128")
    int8 = _case(cases, model, "torch-dynamic-int8-per-channel")
    ort = _case(cases, model, "onnxruntime-o2-int8-dynamic")
    cache = _case(cases, model, "onnxruntime-o2-int8-dynamic", scenario="result-cache")
    if not (padded and int8 and ort) or not all(speed_estimate(c) for c in (padded, int8, ort)):
        return []
    base = int8.metrics["speed"]["latency"]["baseline"]["p50"]  # fp32 eager, unpadded, same worker as int8
    gains = {
        "dynamic": 1 / speed_estimate(padded)["speedup"],  # type: ignore[index]
        "int8": speed_estimate(int8)["speedup"],  # type: ignore[index]
        "onnxruntime": speed_estimate(ort)["speedup"] / speed_estimate(int8)["speedup"],  # type: ignore[index]
    }
    latency = {"fixed": base * gains["dynamic"], "dynamic": base}
    latency["int8"] = base / gains["int8"]
    latency["onnxruntime"] = latency["int8"] / gains["onnxruntime"]
    rows = [
        ("padded to 128 tokens (fp32 eager)", "fixed", "—"),
        (f"distilled model: {model} is one (6 layers, 384 wide)", "distilled", "not a step here"),
        ("dynamic shapes: no padding", "dynamic", f"{gains['dynamic']:.2f}x"),
        ("dynamic int8 (torch, per channel)", "int8", f"{gains['int8']:.2f}x"),
        ("ONNX Runtime O2 + dynamic int8", "onnxruntime", f"{gains['onnxruntime']:.2f}x (ratio of two cases)"),
    ]
    out = ["", "## The production ladder", "",
           f"{model} at batch 1 on this run's cases; each gain over the step above. The write-up's column is "
           "BERT-base on its CPU, for comparison only (see README, 'The ladder').", "",
           "| step | this run | gain | the write-up |", "|---|---|---|---|"]  # fmt: skip
    for label, key, gain in rows:
        here = f"{1000 * latency[key]:.1f} ms" if key in latency else "—"
        out.append(f"| {label} | {here} | {gain} | {LADDER_CLAIMS[key]} |")
    if cache is not None:
        figures = cache.metrics["result_cache"]
        measured = figures["measured"]
        out.append(
            f"| result cache, {figures['repeat_rate']:.0%} repeats ({figures['hit_rate']:.0%} hits) | "
            f"{figures['model_ms_per_request'] / measured['speedup']:.1f} ms per request | {measured['speedup']:.2f}x "
            f"[{measured['ci_low']:.2f}, {measured['ci_high']:.2f}] (predicted {figures['predicted_gain']:.2f}x) | "
            f"{LADDER_CLAIMS['cache']} |"
        )
    return out


def stack_lines(cases: Sequence[CaseResult]) -> list[str]:
    """Each stack against its parts measured in the same run (same model, batch and device): whether it
    beats its best part, judged on the two confidence intervals (overlap is 'within noise')."""
    lines = []
    for stack in cases:
        mine = speed_estimate(stack)
        if "+" not in stack.spec.technique or mine is None:
            continue
        parts = []
        for name in stack.spec.technique.split("+"):
            same = [
                (c, e) for c in cases
                if c.spec.technique == name and (c.spec.model, c.spec.batch_size, c.spec.device)
                == (stack.spec.model, stack.spec.batch_size, stack.spec.device) and (e := speed_estimate(c)) is not None
            ]  # fmt: skip
            if same:
                parts.append((name, same[-1][1]))
        described = ", ".join(f"{name} {e['speedup']:.2f}x" for name, e in parts)
        head = f"{stack.spec.technique} on {stack.spec.model} b{stack.spec.batch_size}: {mine['speedup']:.2f}x"
        if len(parts) < len(stack.spec.technique.split("+")):
            lines.append(f"{head}; not every part was measured in this run ({described or 'none'})")
            continue
        name, best = max(parts, key=lambda part: part[1]["speedup"])
        if mine["ci_low"] > best["ci_high"]:
            verdict = f"beats its best part, {name}"
        elif mine["ci_high"] < best["ci_low"]:
            verdict = f"is slower than its best part, {name}"
        else:
            verdict = f"is within noise of its best part, {name}"
        lines.append(f"{head} {verdict} (parts: {described}; 95% CIs compared)")
    return lines
