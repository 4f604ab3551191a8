"""An upgrade gate's verdicts and figures in Markdown: what perfgate gate, the perfgate.upgrade fixture and
bisect's release steps print."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

__all__ = ["gate_figure", "gate_markdown"]


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
