"""Loading a checkpoint: time to ready and to the first forward's end, the anonymous and file-backed
peaks across both, where the weights went, and the outputs against the plain fp32 load's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult

MIB = 2**20


class LoadMetric(Metric):
    name = "load"
    columns = ("load s", "anon peak")

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        checks = []
        if "anon_peak_ratio" in figures:
            checks.append(Check("max_load_anon_ratio", figures["anon_peak_ratio"], higher_is_better=False))
        if "resident_ratio" in figures:
            checks.append(Check("max_offload_resident_ratio", figures["resident_ratio"], higher_is_better=False))
        if "max_abs_diff" in figures:
            checks.append(Check("max_load_output_diff", figures["max_abs_diff"], higher_is_better=False))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        total = figures["ready_seconds"] + figures["first_forward_seconds"]
        anon = figures.get("anon_peak")
        return {
            "load s": f"{figures['ready_seconds']:.2f}+{figures['first_forward_seconds']:.2f}={total:.2f}",
            "anon peak": "-" if anon is None else f"{anon / MIB:.0f} MiB ({figures['anon_peak_ratio']:.2f}x stored)",
        }

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Loading", "",
               "Each strategy in a fresh worker. Times: to a ready model, then its first forward pass. Peaks across "
               "both, sampled from the parent: anonymous memory beyond a worker with the same imports and no "
               "weights, and file-backed memory (libraries' pages included; the model's own files alone after "
               "the forward). Samples: their count, and the largest sample's share of the kernel's high-water mark "
               "(below 0.90 they missed the peak, and the split is not judged). Outputs against the plain fp32 "
               "load of the single safetensors file. Not strategies: "
               "low_cpu_mem_usage and offload_state_dict, which from_pretrained discards unused in transformers "
               "4.57 and 5 (it always builds on the meta device first).", "",
               "| model | strategy | stored MiB | ready s | first forward s | anon peak MiB | file peak MiB | "
               "model files resident MiB | placed (MiB per device) | resident / RAM budget | max abs diff | "
               "samples (hwm share) |",
               "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            placed = ", ".join(f"{d} {b / MIB:.0f}" for d, b in f["details"].get("placement_bytes", {}).items())
            sampled = f.get("sampled") or {}
            share = f.get("sampled_share_of_hwm")
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['stored_bytes'] / MIB:.0f} | "
                f"{f['ready_seconds']:.2f} | {f['first_forward_seconds']:.2f} | {_mb(f.get('anon_peak'))} | "
                f"{_mb(f.get('file_peak'))} | {_mb(f['after'].get('model_file'))} | {placed} | {_budget(f)} | "
                f"{f.get('max_abs_diff', 0.0):.3g} | {sampled.get('samples', 0)} "
                f"({'-' if share is None else f'{share:.2f}'}) |"
            )
        return out


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def _budget(figures: dict[str, Any]) -> str:
    budget = figures["details"].get("max_memory_cpu")
    if not budget or "resident_after" not in figures:
        return "-"
    return f"{figures['resident_after'] / MIB:.0f}/{budget / MIB:.0f} MiB ({figures['resident_ratio']:.2f}x)"


class LoadUnderCapMetric(Metric):
    """Which strategies still load and run under a memory cap below the model's size (reported, not gated:
    the perf test states which must and which must not)."""

    name = "load_under_cap"
    columns = ("under cap",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        return []

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        cap = f"{figures['cap_bytes'] / MIB:.0f} MiB"
        if figures["fits"]:
            return {"under cap": f"fits {cap} (peak {figures['peak_charged'] / MIB:.0f} MiB)"}
        return {"under cap": f"killed at {cap}" if figures["outcome"] == "oom" else figures["outcome"]}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Loading under a memory cap", "",
               "Each strategy in a worker whose memory cgroup is capped below the model's size, beyond what its "
               "imported libraries hold; the model's files are evicted from the page cache first, so the worker "
               "is charged for the weight pages it reads. A kill by the kernel inside the group: does not fit.",
               "", "| model | strategy | cap MiB | fits | peak charged MiB | ready s | first forward s |",
               "|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            if f["fits"]:
                peak, ready, first = (
                    f"{f['peak_charged'] / MIB:.0f}",
                    f"{f['ready_seconds']:.2f}",
                    f"{f['first_forward_seconds']:.2f}",
                )
            else:
                peak = ready = first = "-"
            fits = "yes" if f["fits"] else ("no: killed inside its cgroup" if f["outcome"] == "oom" else f["outcome"])
            out.append(f"| {case.spec.model} | {case.spec.technique} | {f['cap_bytes'] / MIB:.0f} | {fits} | {peak} | "
                       f"{ready} | {first} |")  # fmt: skip
        return out
