"""Rendering a run: the terminal table at the end of the pytest run and ``summary.md``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from perfgate.measurement import CaseResult
from perfgate.results import RunRecord

__all__ = ["markdown_summary", "summary_rows", "text_table"]

COLUMNS = (
    "model",
    "technique",
    "batch",
    "speedup [95% CI]",
    "verdict",
    "cos min",
    "top-1",
    "task",
    "memory",
    "size",
    "outcome",
)


def _ratio(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def summary_rows(cases: Sequence[CaseResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for case in cases:
        estimate = (case.comparison or {}).get("estimate")
        speed = (
            "-" if not estimate else f"{estimate['speedup']:.2f}x [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]"
        )
        if estimate and estimate["noisy"]:
            speed += " noisy"
        fidelity: dict[str, Any] = case.fidelity or {}
        task = case.task or {}
        rows.append(
            (
                case.spec.model,
                case.spec.technique,
                str(case.spec.batch_size),
                speed,
                case.verdict.upper(),
                f"{fidelity['cosine_min']:.4f}" if fidelity else "-",
                f"{fidelity['top1_agreement']:.3f}" if fidelity.get("top1_agreement") is not None else "-",
                f"{task['candidate']:.3f}/{task['baseline']:.3f}" if task else "-",
                _ratio((case.memory or {}).get("ratio")),
                _ratio((case.size or {}).get("ratio")),
                case.outcome if not case.detail else f"{case.outcome}: {case.detail[:60]}",
            )
        )
    return rows


def text_table(cases: Sequence[CaseResult]) -> str:
    rows = [COLUMNS, *summary_rows(cases)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_summary(record: RunRecord, skipped: Sequence[tuple[str, str]] = ()) -> str:
    fingerprint = record.fingerprint
    classes = fingerprint.get("hardware_class", {})
    cpu = fingerprint.get("cpu", {})
    libraries = ", ".join(f"{k} {v}" for k, v in sorted(fingerprint.get("libraries", {}).items()))
    out = [
        "# perfgate summary",
        "",
        f"- started: {record.started}",
        f"- hardware class: cpu `{classes.get('cpu')}`, cuda `{classes.get('cuda')}`",
        f"- cpu: {cpu.get('model')} ({cpu.get('logical_cores')} logical cores)",
        f"- libraries: {libraries}",
        "",
        "Speedup is baseline time / candidate time (fp32 eager baseline, same process, interleaved ABBA pairs);",
        "memory is the forward pass's RSS growth in a fresh subprocess relative to fp32; size is bytes of weights.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    out += ["| " + " | ".join(row) + " |" for row in summary_rows(record.cases)]
    ungated = sorted({c.hardware_class for c in record.cases if c.verdict == "ungated"})
    if ungated:
        out += ["", f"Hardware class(es) {', '.join(ungated)} have no thresholds: measured and recorded, not gated."]
    generation = [case for case in record.cases if case.generation]
    if generation:
        out += ["", "## Generation (greedy, fixed number of new tokens)", ""]
        out += [
            "| model | technique | new tokens | time to first token, fp32 → candidate | per token, fp32 → candidate |"
        ]
        out += ["|---|---|---|---|---|"]
        for case in generation:
            base, cand = case.generation["baseline"], case.generation["candidate"]  # type: ignore[index]
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {base['new_tokens']} | "
                f"{base['time_to_first_token'] * 1e3:.2f} → {cand['time_to_first_token'] * 1e3:.2f} ms | "
                f"{base['per_token'] * 1e3:.3f} → {cand['per_token'] * 1e3:.3f} ms |"
            )
    failures = [check.message for case in record.cases for check in case.failures()]
    if failures:
        out += ["", "## Failed checks", "", *[f"- {m}" for m in failures]]
    if record.calibration:
        out += ["", "## Runner calibration", ""]
        out += [f"- {key}: {entry.get('summary', '')}" for key, entry in sorted(record.calibration.items())]
    if skipped:
        out += ["", "## Skipped", "", *[f"- `{nodeid}`: {reason}" for nodeid, reason in skipped]]
    return "\n".join(out) + "\n"
