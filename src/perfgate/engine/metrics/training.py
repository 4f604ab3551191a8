"""Training: the equivalence of a recipe's first steps to fp32 AdamW's, its peak memory over a few
steps against fp32 AdamW's, its optimizer state against what the optimizer's rule predicts, and for
loader workers the speedup measured over the speedup predicted (``train_batch``: the largest batch that
fits, and the sweep up to it). The step's speed is the ``speed`` metric, timed ABBA like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from perfgate.engine.metrics.contract import Metric
from perfgate.verdicts.thresholds import Check

if TYPE_CHECKING:
    from perfgate.engine.record import CaseResult

MIB = 2**20


class Training(Metric):
    name = "training"
    columns = ("train",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        checks = [Check("max_loss_diff", figures["max_loss_diff"], higher_is_better=False)]
        memory = figures.get("memory") or {}
        if memory.get("ratio") is not None:
            checks.append(Check("max_train_memory_ratio", memory["ratio"], higher_is_better=False))
        if "candidate" in memory:
            checks.append(
                Check(
                    "max_state_prediction_error", memory["candidate"]["state_prediction_error"], higher_is_better=False
                )
            )
        if "data" in figures:
            efficiency = figures["data"]["prefetch_efficiency"]
            checks.append(Check("min_prefetch_efficiency", efficiency, higher_is_better=True))
        return checks

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        text = f"loss Δ {figures['max_loss_diff']:.2g}"
        memory = figures.get("memory") or {}
        if memory.get("ratio") is not None:
            state = memory["candidate"]["optimizer_state_bytes"] / MIB
            text += f"; memory {memory['ratio']:.2f}x; state {state:.1f} MiB"
        if "data" in figures:
            data = figures["data"]
            text += f"; predicted {data['predicted_speedup']:.2f}x, efficiency {data['prefetch_efficiency']:.2f}"
        return {"train": text}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Training", "",
               "Each recipe against fp32 AdamW on the same model and seeded batches (a plain PyTorch loop, named as "
               "the Trainer's arguments). Speed: steps timed ABBA in one worker. Loss Δ: the largest difference over "
               "the first steps from the same weights. Memory: anonymous peak over a few steps (the first "
               "included) beyond the loaded model, each arm in a fresh worker (on CUDA the ratio judges the device's "
               "peak allocated over the same steps). Optimizer state: measured, and "
               "predicted from the parameters by the optimizer's rule.", "",
               "| model | recipe | batch x length | samples/s fp32 → recipe | speedup [95% CI] | loss Δ | "
               "peak MiB fp32 → recipe | optimizer state MiB (predicted) |",
               "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            rate = f["samples_per_second"]
            estimate = (case.metrics.get("speed") or {}).get("estimate") or {}
            speed = (f"{estimate['speedup']:.2f}x [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]"
                     if estimate else "-")  # fmt: skip
            memory = f.get("memory") or {}
            peaks = state = "-"
            if "candidate" in memory:
                base, cand = memory["baseline"].get("anon_peak"), memory["candidate"].get("anon_peak")
                peaks = f"{_mb(base)} → {_mb(cand)}"
                c = memory["candidate"]
                state = f"{c['optimizer_state_bytes'] / MIB:.1f} ({c['predicted_state_bytes'] / MIB:.1f})"
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['batch_size']}x{f['seq_len']} | "
                f"{rate['baseline']:.1f} → {rate['candidate']:.1f} | {speed} | {f['max_loss_diff']:.2g} | "
                f"{peaks} | {state} |"
            )
        loaders = [case for case in rows if "data" in case.metrics[self.name]]
        if loaders:
            out += ["", "Loader workers against loading in the training process, epochs timed ABBA; each item "
                    "costs a fixed wait, set so a batch costs what its step computes. Predicted: from the step's "
                    "compute time, the cost paid per item and the workers' start-up, by the loader's schedule.", "",
                    "| model | recipe | workers | step ms | item ms | start-up ms | steps/epoch | predicted | "
                    "efficiency |",
                    "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
            for case in loaders:
                d = case.metrics[self.name]["data"]
                out.append(
                    f"| {case.spec.model} | {case.spec.technique} | {d['workers']} | {1000 * d['step_seconds']:.0f} | "
                    f"{1000 * d['item_seconds']:.1f} | {1000 * d.get('startup_seconds', 0.0):.0f} | "
                    f"{d['steps_per_epoch']} | {d['predicted_speedup']:.2f}x | "
                    f"{d['prefetch_efficiency']:.2f} |"
                )
        return out


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


class TrainingBatch(Metric):
    name = "train_batch"
    columns = ("train batch",)

    def measured(self, figures: dict[str, Any]) -> list[Check]:
        ratio = figures.get("ratio")
        return [] if ratio is None else [Check("min_train_batch_fit_ratio", ratio, higher_is_better=True)]

    def cells(self, figures: dict[str, Any]) -> dict[str, str]:
        base, cand = figures["baseline"]["largest"], figures["candidate"]["largest"]
        return {"train batch": f"largest b{cand} vs fp32 AdamW b{base}"}

    def section(self, cases: Sequence[CaseResult]) -> list[str]:
        from perfgate.engine.metrics.largest_batch import describe_cap

        rows = [case for case in cases if self.name in case.metrics]
        if not rows:
            return []
        out = ["## Training batch size", "",
               "Two training steps per try, each try a fresh worker under the cap shown (a cgroup budget beyond "
               "the imported libraries counts weights, gradients, optimizer state and activations), doubling "
               "then bisection up to the largest batch that fits. Per fitting size: samples/s of the second "
               "step and the peak beyond the libraries.", "",
               "| model | recipe | length | cap | largest | fp32 AdamW largest | ratio | "
               "sweep: batch samples/s (peak MiB) |",
               "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for case in rows:
            f = case.metrics[self.name]
            ratio = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x"
            sweep = " · ".join(
                f"b{row['batch_size']} {row['samples_per_second']:.1f} ({_mb(row['peak_bytes'])})"
                for row in f["candidate"]["sweep"]
            )
            out.append(
                f"| {case.spec.model} | {case.spec.technique} | {f['seq_len']} | {describe_cap(f['cap'])} | "
                f"b{f['candidate']['largest']} | b{f['baseline']['largest']} | {ratio} | {sweep} |"
            )
        return out
