"""Rendering a run: the terminal table at the end of the pytest run and ``summary.md``.

The table's middle columns and the Markdown sections come from the metrics (``perfgate.metrics``):
a new metric shows up here without an edit.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.case import CaseResult
from perfgate.metrics import all_metrics
from perfgate.outcome import Outcome, Verdict
from perfgate.recommend import recommendation_section
from perfgate.results import RunRecord

if TYPE_CHECKING:
    from perfgate.history import Comparison

__all__ = [
    "TERMINAL_WIDTH",
    "attention_reason",
    "between_process_section",
    "case_label",
    "clip",
    "columns",
    "compact_table",
    "isolation_line",
    "markdown_summary",
    "needs_attention",
    "skip_counts",
    "skip_line",
    "speed_estimate",
    "stack_lines",
    "summary_rows",
    "terminal_summary",
    "text_table",
    "time_section",
    "ungated_fields",
    "ungated_lines",
    "ungated_techniques",
    "verdict_label",
]

TERMINAL_WIDTH = 120  # the terminal summary's widest line; every column goes to summary.md
# The compact table: speedup in its own column, the case's other figures (those it has) in one.
COMPACT_SPEED = "speedup [95% CI]"
NOT_IN_FIGURES = frozenset({"top-1", "attrib MiB", "verdict", "setup s", "wall s", "outcome"})
SHORT = {"cos min": "cos", "memory": "mem", "size": "size"}  # shown first, in this order
CASE_WIDTH = 44  # longer technique names are cut in the middle; summary.md has them whole
VERDICT_MARKS = {
    "*": "expected: its test asserts this failure (a planted fault, a bad checkpoint) and passed",
    "!": "its test failed although the verdict is not FAIL (see needs attention)",
}
ATTENTION = (Verdict.FAIL, Verdict.INCONCLUSIVE)


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


def columns() -> tuple[str, ...]:
    # A column two metrics share ("train": one process's recipes and the distributed ones) appears once.
    metric_columns = list(dict.fromkeys(column for metric in all_metrics() for column in metric.columns))
    return (
        "model",
        "technique",
        "batch",
        *metric_columns[:1],
        "verdict",
        *metric_columns[1:],
        "setup s",
        "wall s",
        "outcome",
    )


def summary_rows(cases: Sequence[CaseResult]) -> list[tuple[str, ...]]:
    header = columns()
    rows: list[tuple[str, ...]] = []
    for case in cases:
        cells = {"model": case.spec.model, "technique": case.spec.technique, "batch": str(case.spec.batch_size)}
        for metric in all_metrics():
            if metric.name in case.metrics:
                cells.update(metric.cells(case.metrics[metric.name]))
        cells["verdict"] = verdict_label(case)
        cells["setup s"] = f"{case.setup_seconds:.1f}"
        cells["wall s"] = f"{case.wall_seconds:.1f}"
        cells["outcome"] = case.outcome if not case.detail else f"{case.outcome}: {case.detail[:60]}"
        rows.append(tuple(cells.get(column, "-") for column in header))
    return rows


def verdict_label(case: CaseResult) -> str:
    """The verdict, with what its test made of it: a FAIL the test asserted is expected."""
    label = str(case.verdict).upper()
    if case.expected_failure:
        return f"{label} (expected)"
    if case.test_outcome == "failed" and case.verdict != Verdict.FAIL:
        return f"{label}, test failed"
    return label


def needs_attention(case: CaseResult) -> bool:
    if case.expected_failure:
        return False
    return case.verdict in ATTENTION or case.test_outcome == "failed" or case.outcome != Outcome.MEASURED


def attention_reason(case: CaseResult) -> str:
    """Why a case needs attention, in one line: its failed or undecided checks, its outcome, its test."""
    if case.outcome != Outcome.MEASURED:
        first = (case.detail or "").splitlines()
        return f"{case.outcome}: {first[0] if first else 'no detail recorded'}"
    checks = [c.message for c in case.checks if c.verdict in ATTENTION]
    if checks:
        return "; ".join(checks)
    return f"its test failed: {case.test_failure or 'see the failure above'}"


def clip(text: str, width: int, middle: bool = False) -> str:
    if len(text) <= width:
        return text
    if middle:
        head = (width - 1) // 2
        return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
    return text[: width - 1] + "…"


def _wrap(text: str, width: int, max_lines: int | None = None) -> list[str]:
    wrapped = textwrap.wrap(
        text, width, subsequent_indent="    ", break_on_hyphens=False, max_lines=max_lines, placeholder=" …"
    )
    return wrapped or [""]


def compact_table(cases: Sequence[CaseResult], width: int = TERMINAL_WIDTH) -> list[str]:
    """The summary table cut to ``width``, one block per model: each case's technique (batch, and device
    and scenario where they are not the default), verdict, speedup, and its other figures in one column."""
    header = ("case", "verdict", COMPACT_SPEED, "figures")
    wide = columns()
    rest = [c for c in wide[3:] if c not in (COMPACT_SPEED, *NOT_IN_FIGURES)]
    figure_columns = [c for c in SHORT if c in rest] + [c for c in rest if c not in SHORT]
    by_model: dict[str, list[tuple[str, ...]]] = {}
    for case, wide_row in zip(cases, summary_rows(cases), strict=True):
        cells = dict(zip(wide, wide_row, strict=True))
        figures = [f"{SHORT.get(c, c)} {cells[c]}" for c in figure_columns if cells[c] != "-"]
        if case.outcome != Outcome.MEASURED:
            figures.insert(0, attention_reason(case))
        speed = cells[COMPACT_SPEED].replace(" noisy", "~")
        row = (f"  {case_label(case)}", _verdict_mark(case), speed, ", ".join(figures))
        by_model.setdefault(case.spec.model, []).append(row)
    rows = [row for model_rows in by_model.values() for row in model_rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[0] = min(widths[0], CASE_WIDTH)
    widths[-1] = max(width - sum(widths[:-1]) - 2 * (len(widths) - 1), len(header[-1]))
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for model, model_rows in by_model.items():
        lines.append(model)
        for entry in model_rows:
            shown = [clip(c, w, middle=i == 0).ljust(w) for i, (c, w) in enumerate(zip(entry, widths, strict=True))]
            lines.append("  ".join(shown).rstrip())
    marks = "".join(mark for case in cases for mark in _verdict_mark(case) if mark in VERDICT_MARKS)
    lines += [f"{mark} {VERDICT_MARKS[mark]}" for mark in VERDICT_MARKS if mark in marks]
    if any(row[2].endswith("~") for row in rows):
        lines.append("~ noisy timing: the A/B pairs spread widely (summary.md gives the spread)")
    return lines


def _verdict_mark(case: CaseResult) -> str:
    if case.expected_failure:
        return f"{str(case.verdict).upper()}*"
    if case.test_outcome == "failed" and case.verdict != Verdict.FAIL:
        return f"{str(case.verdict).upper()}!"
    return str(case.verdict).upper()


def case_label(case: CaseResult) -> str:
    """Technique and batch, with the device and scenario where they are not the default."""
    spec = case.spec
    parts = [spec.technique, f"b{spec.batch_size}"]
    if spec.device != "cpu":
        parts.append(spec.device)
    if spec.scenario != "ab-forward":
        parts.append(spec.scenario)
    return " ".join(parts)


def skip_counts(skipped: Sequence[tuple[str, str]]) -> Counter[str]:
    """Skipped tests counted by reason (the reason's text before its first ':'), most first."""
    return Counter(reason.split(":")[0].strip() for _, reason in skipped)


def skip_line(skipped: Sequence[tuple[str, str]], width: int = TERMINAL_WIDTH) -> str:
    """One line: how many tests were skipped, counted by reason."""
    counts = skip_counts(skipped)
    parts = [f"{count} {reason}" for reason, count in counts.most_common()]
    line = f"skipped {len(skipped)}: " + ", ".join(parts)
    tail = " … (every reason: summary.md)"
    return line if len(line) <= width else line[: width - len(tail)] + tail


def terminal_summary(
    record: RunRecord, skipped: Sequence[tuple[str, str]] = (), width: int = TERMINAL_WIDTH
) -> list[str]:
    """What the terminal shows at the end of a run, no line wider than ``width``: the verdict counts, what
    needs attention and why, the compact table, expected failures, the skips by reason, the ungated."""
    cases = record.cases
    classes = sorted({case.hardware_class for case in cases if case.hardware_class}) or [
        str(record.fingerprint.get("hardware_class", {}).get("cpu", "unknown"))
    ]
    verdicts = Counter(case.verdict for case in cases)
    counted = [f"{verdicts[v]} {str(v).upper()}" for v in Verdict if verdicts[v]]
    expected = [case for case in cases if case.expected_failure]
    if expected:
        counted = [f"{part} ({len(expected)} expected by their tests)" if part.endswith(" FAIL") else part
                   for part in counted]  # fmt: skip
    lines = _wrap(f"{len(cases)} cases on {', '.join(classes)}: {', '.join(counted) or 'none measured'}", width)
    attention = [case for case in cases if needs_attention(case)]
    if attention:
        lines.append(f"needs attention ({len(attention)}):")
        for case in attention:
            entry = f"  {case.spec.case_id} ({verdict_label(case)}): {attention_reason(case)}"
            lines += _wrap(entry, width, max_lines=2)  # summary.md has the rest
    else:
        lines.append("needs attention: nothing (no unexpected FAIL, no INCONCLUSIVE, no failed test)")
    if cases:
        lines += ["", *compact_table(cases, width)]
    if skipped:
        lines.append(skip_line(skipped, width))
    for line in ungated_lines(cases):
        lines += _wrap(line, width)
    return lines


def text_table(cases: Sequence[CaseResult]) -> str:
    header = columns()
    rows = [header, *summary_rows(cases)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_summary(
    record: RunRecord, skipped: Sequence[tuple[str, str]] = (), comparison: Comparison | None = None
) -> str:
    fingerprint = record.fingerprint
    classes = fingerprint.get("hardware_class", {})
    cpu = fingerprint.get("cpu", {})
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(fingerprint.get("libraries", {}).items()))
    header = columns()
    out = [
        "# perfgate summary",
        "",
        f"- started: {record.started}",
        f"- hardware class: cpu `{classes.get('cpu')}`, cuda `{classes.get('cuda')}`",
        f"- cpu: {cpu.get('model')} ({cpu.get('logical_cores')} logical cores)",
        f"- libraries: {libraries}",
        "",
        "Speedup is baseline time / candidate time (fp32 eager baseline, same worker process, interleaved ABBA",
        "pairs); memory is the candidate's serving memory attributable to the model relative to fp32 (see the",
        "memory section); size is bytes of weights; setup s is what isolation cost the case outside the timed",
        "blocks (worker starts, model loads); wall s is the case from start to verdict.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    out += ["| " + " | ".join(row) + " |" for row in summary_rows(record.cases)]
    out += ["", isolation_line(record.cases)]
    out += ["", *section] if (section := between_process_section(record.cases, comparison)) else []
    ungated = ungated_lines(record.cases)
    if ungated:
        out += ["", "Measured but not gated:", "", *[f"- {line}" for line in ungated]]
    out += ladder_section(record.cases)
    out += ["", *section] if (section := recommendation_section(record)) else []
    out += ["", *section] if (section := settings_section(record.cases)) else []
    out += time_section(record.cases)
    stacks = stack_lines(record.cases)
    if stacks:
        out += ["", "## Stacks against their parts", "", *[f"- {line}" for line in stacks]]
    for metric in all_metrics():
        section = metric.section(record.cases)
        if section:
            out += ["", *section]
    faults = [case for case in record.cases if case.outcome != Outcome.MEASURED]
    if faults:
        out += ["", "## Outcomes that are not results", ""]
        for case in faults:
            out.append(f"- `{case.spec.case_id}` ({case.nodeid}): **{case.outcome}**: {case.detail}")
            if case.log:
                out += ["", "  ```", *[f"  {line}" for line in case.log.splitlines()[-8:]], "  ```"]
    failures = [check.message for case in record.cases for check in case.failures()]
    if failures:
        out += ["", "## Failed checks", "", *[f"- {m}" for m in failures]]
    explained = [case.metrics["explain"]["markdown"] for case in record.cases if "explain" in case.metrics]
    if explained:
        out += ["", "## Where the time went, op by op (`--perfgate-explain`)", "", *explained]
    if record.calibration:
        out += ["", "## Runner calibration", ""]
        out += [
            f"- {key}: {entry.get('summary') or entry.get('detail', '')}"
            for key, entry in sorted(record.calibration.items())
        ]
    if record.gates:
        out += ["", gate_markdown(record.gates, title="## Upgrade gates")]
    if skipped:
        out += ["", "## Skipped", "", *[f"- `{nodeid}`: {reason}" for nodeid, reason in skipped]]
    return "\n".join(out) + "\n"


def gate_markdown(gates: Sequence[dict[str, Any]], title: str = "# perfgate upgrade gate") -> str:
    """One table per upgrade gate (``GateResult.to_dict()``): a verdict per check with its interval
    and rule. Fits a GitHub job summary."""
    lines = [title, ""] if title else []
    for gate in gates:
        current, candidate = gate["arms"]["current"], gate["arms"]["candidate"]
        two_pythons = current["python"] != candidate["python"]
        lines += [f"### {gate['technique']}: **{gate['verdict']}**", ""]
        for label, arm in (("current", current), ("candidate", candidate)):
            under = f" under `{arm['python']}`" if two_pythons else ""
            lines.append(f"- {label}: {arm['model']} (`{arm['location']}`){under}")
        if gate["outcome"] != "measured":
            lines += [f"- no verdict: {gate['outcome']}: {gate['detail']}", ""]
            continue
        figures = gate["figures"]
        changed = _changed_libraries(
            figures.get("arms", {}).get("current", {}), figures.get("arms", {}).get("candidate", {})
        )
        if changed:
            lines.append(f"- libraries: {changed}")
        outputs = figures.get("outputs", {})
        if outputs.get("comparable"):
            cosine, error = outputs["cosine_min"], outputs["max_abs_error"]
            lines.append(f"- outputs agree to cosine ≥ {cosine:.6f} (max abs error {error:.2e})")
        for setting in figures.get("settings", []):
            lines.append(f"- changed from its default: {setting['name']} = {setting['value']} "
                         f"(default {setting['default']}): {setting['why']}")  # fmt: skip
        lines += ["", "| check | verdict | candidate vs current | rule | detail |", "|---|---|---|---|---|"]
        lines += [
            f"| {c['name']} | **{c['verdict']}** | {gate_figure(c)} | {c['rule']} | {c['detail']} |"
            for c in gate["checks"]
        ]
        lines.append("")
    return "\n".join(lines)


def gate_figure(check: dict[str, Any]) -> str:
    estimate, low, high = check["estimate"], check["low"], check["high"]
    if estimate is None:
        return "—"
    if check["name"] == "accuracy":
        return f"{estimate:+.3f} [{low:+.3f}, {high:+.3f}]"
    if low is not None and high is not None:
        return f"{estimate:.2f}x [{low:.2f}, {high:.2f}]"
    return f"{estimate:.2f}x"


def _changed_libraries(current: dict[str, Any], candidate: dict[str, Any]) -> str:
    before, after = current.get("libraries", {}), candidate.get("libraries", {})
    names = sorted(set(before) | set(after))
    changes = [
        f"{name} {before.get(name, '—')} → {after.get(name, '—')}"
        for name in names
        if before.get(name) != after.get(name)
    ]
    if current.get("python") != candidate.get("python"):
        changes.insert(0, f"Python {current.get('python')} → {candidate.get('python')}")
    return ", ".join(changes)


JOB_SUMMARY_LIMIT = 1024 * 1024  # GitHub refuses a step summary above 1 MiB


def fit_job_summary(markdown: str, limit: int = JOB_SUMMARY_LIMIT) -> str:
    """``markdown`` cut at a line boundary to fit a GitHub job summary, saying what was left out and where
    the whole of it is; unchanged when it fits."""
    data = markdown.encode()
    if len(data) <= limit:
        return markdown
    kept = data[: limit - 512].decode(errors="ignore").rsplit("\n", 1)[0]
    left = len(markdown.splitlines()) - len(kept.splitlines())
    return f"{kept}\n\n**Cut to fit a job summary (1 MiB): {left} more lines are in the full report file.**\n"
