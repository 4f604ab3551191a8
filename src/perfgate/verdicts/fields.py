"""The threshold fields: what each bounds, whether it depends on the hardware (and so belongs in a family,
capability or class section rather than default), and the rule its bound is derived by from stored
runs (a margin, and the share of the smallest effect every run showed that the bound keeps)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "EFFICIENCY_RULE",
    "FIELDS",
    "FIT_RULE",
    "GAIN_RULE",
    "HARDWARE_FIELDS",
    "LOAD_RULE",
    "MEMORY_RULE",
    "NO_EFFECT",
    "NO_EFFECT_HALF_WIDTH",
    "PROMISE_KEEP",
    "SPEED_FIELDS",
    "SPEED_RULE",
    "TASK_FIELDS",
    "Field",
    "Rule",
    "no_effect_fails",
]


NO_EFFECT = 1.0  # the line of no effect of every ratio against fp32 eager: same speed, same memory


PROMISE_KEEP = 0.5  # the share of the smallest effect every run showed that a derived bound keeps


NO_EFFECT_HALF_WIDTH = 0.03  # the interval a no-effect run reaches in the nightly's budget (README: ±3% in 16 of 17)


@dataclass(frozen=True)
class Rule:
    """How ``perfgate thresholds derive`` turns one field's values over several runs into a threshold: a
    floor is ``factor`` x the lowest value; a ceiling the larger of ``factor`` x the highest and the
    highest + ``margin``. The margins are the ones the project's own thresholds were written by.

    ``keep`` is the technique's promise: where every value shows the effect (a floor: the lowest above
    1; a ceiling: the highest below 1), the bound keeps at least that share of the smallest effect seen,
    so a run whose effect is gone (1.00x ±3%, a memory ratio of 1.00) fails instead of passing on the
    slack a margin gives. Fields whose no-effect line is not 1 (load peaks over the stored bytes, the
    loader's efficiency against its prediction) have none."""

    factor: float
    margin: float = 0.0
    keep: float = 0.0

    def apply(self, values: list[float], floor: bool) -> float:
        if floor:
            bound = self.factor * min(values)
            return max(bound, self.promise(values, floor)) if self.shows_effect(values, floor) else bound
        bound = max(self.factor * max(values), max(values) + self.margin)
        return min(bound, self.promise(values, floor)) if self.shows_effect(values, floor) else bound

    def shows_effect(self, values: list[float], floor: bool) -> bool:
        """Every value on the technique's side of the no-effect line (only for a rule with a promise)."""
        if not self.keep or not values:
            return False
        return min(values) > NO_EFFECT if floor else max(values) < NO_EFFECT

    def promise(self, values: list[float], floor: bool) -> float:
        """The bound that keeps ``keep`` of the smallest effect in ``values``."""
        if floor:
            return NO_EFFECT + self.keep * (min(values) - NO_EFFECT)
        return NO_EFFECT - self.keep * (NO_EFFECT - max(values))

    def describe(self, floor: bool) -> str:
        kept = ""
        if self.keep:
            smallest = "the lowest - 1" if floor else "1 - the highest"
            side = "above" if floor else "below"
            kept = f"; where every value is {side} 1, at least {self.keep:g} x ({smallest}) from 1"
        if floor:
            return f"{self.factor:g} x the lowest{kept}"
        return f"max(highest x {self.factor:g}, highest + {self.margin:g}){kept}"


def no_effect_fails(bound: float, floor: bool) -> bool:
    """Whether a run with no effect FAILS ``bound``: a floor needs the whole ±3% interval of a 1.00x run
    below it; a ceiling (a ratio with no interval) needs 1.00 above it. Otherwise the effect is marginal:
    a floor above 1 keeps a no-effect run INCONCLUSIVE (never PASS); a ceiling of 1.00 lets it pass."""
    if floor:
        return bound > NO_EFFECT * (1 + NO_EFFECT_HALF_WIDTH)
    return bound < NO_EFFECT


@dataclass(frozen=True)
class Field:
    """One threshold field: its range, what it bounds, whether it depends on the hardware, and the rule
    ``perfgate thresholds derive`` writes it by (hardware-dependent fields only)."""

    low: float
    high: float
    meaning: str
    hardware: bool  # True: speed, memory, gains, fits; False: exact or library-fixed (fidelity, sizes, graphs)
    rule: Rule | None = None


SPEED_RULE = Rule(0.75, keep=PROMISE_KEEP)  # of the lowest lower CI bound: a runner 20% slower passes


GAIN_RULE = Rule(0.75, keep=PROMISE_KEEP)  # batching and sorting gains: ratios of medians, speed's margin


EFFICIENCY_RULE = Rule(0.75)  # the loader's measured speedup over its prediction: 1 is the prediction, not no effect


FIT_RULE = Rule(0.85, keep=PROMISE_KEEP)  # largest batch under a cap: exact for a cap, the fp32 arm moves 3-4%


MEMORY_RULE = Rule(1.15, 0.10, keep=PROMISE_KEEP)  # serving and training memory: a few MB move a small fp32 side


LOAD_RULE = Rule(1.15, 0.05)  # load peaks and offload residency over stored bytes (hundreds of MB)


FIELDS: Mapping[str, Field] = {
    "min_speedup": Field(0.0, math.inf, "lower CI bound of baseline/candidate time must reach it", True, SPEED_RULE),
    "max_slowdown": Field(
        0.0, math.inf, "candidate may be this fraction slower (0.1 = 10%), judged on the CI", True, SPEED_RULE
    ),
    "max_memory_ratio": Field(
        0.0, math.inf, "candidate/baseline serving memory attributable to the model", True, MEMORY_RULE
    ),
    "min_decode_speedup": Field(
        0.0,
        math.inf,
        "generation: lower CI bound of fp32's per-token decode time over the candidate's",
        True,
        SPEED_RULE,
    ),
    "max_size_ratio": Field(0.0, math.inf, "candidate/baseline bytes of weights", False),
    "min_cosine": Field(-1.0, 1.0, "lowest row cosine to fp32 outputs", False),
    "min_top1": Field(0.0, 1.0, "share of rows whose argmax agrees with fp32", False),
    "min_task_ratio": Field(0.0, math.inf, "task score relative to fp32 (0.99 = 99% of fp32)", False),
    "max_task_loss": Field(
        0.0, 1.0, "task accuracy the candidate may lose to fp32 (0.02 = 2 points), judged on the paired interval", False
    ),
    "max_compile_graphs": Field(1.0, math.inf, "graphs torch.compile builds over the fixed length sweep", False),
    "max_graph_breaks": Field(0.0, math.inf, "graph breaks while tracing", False),
    "max_energy_ratio": Field(0.0, math.inf, "candidate/baseline GPU energy per inference (NVML)", True, MEMORY_RULE),
    "min_batching_gain": Field(
        0.0,
        math.inf,
        "batch sweep: best length-sorted throughput over batch-1 throughput",
        True,
        GAIN_RULE,
    ),
    "min_sorting_gain": Field(
        0.0, math.inf, "batch sweep: length-sorted over random-order throughput at the largest batch", True, GAIN_RULE
    ),
    "min_cache_gain": Field(
        0.0, math.inf, "result cache: lower CI bound of the stream's speedup with the cache", True, SPEED_RULE
    ),
    "max_cache_prediction_error": Field(
        0.0, 1.0, "result cache: relative distance of the measured gain's interval from the hit-rate prediction", False
    ),
    "min_batch_fit_ratio": Field(
        0.0,
        math.inf,
        "largest batch that fits under the same memory cap, over fp32's",
        True,
        FIT_RULE,
    ),
    "max_load_anon_ratio": Field(
        0.0,
        math.inf,
        "load: anonymous peak beyond the runtime's, over the stored weights",
        True,
        LOAD_RULE,
    ),
    "max_load_output_diff": Field(
        0.0, math.inf, "load: largest absolute output difference to the plain fp32 load", False
    ),
    "max_loss_diff": Field(
        0.0, math.inf, "training: largest loss difference to fp32 AdamW over the first steps", False
    ),
    "min_train_batch_fit_ratio": Field(
        0.0,
        math.inf,
        "training: largest batch that fits under the cap, over fp32 AdamW's",
        True,
        FIT_RULE,
    ),
    "min_prefetch_efficiency": Field(
        0.0,
        math.inf,
        "training: loader workers' measured speedup over the predicted one",
        True,
        EFFICIENCY_RULE,
    ),
    "max_train_memory_ratio": Field(
        0.0, math.inf, "training: anonymous peak over the steps, over fp32 AdamW's", True, MEMORY_RULE
    ),
    "max_state_prediction_error": Field(
        0.0, math.inf, "training: optimizer state measured against its rule, relative", False
    ),
    "max_shard_prediction_error": Field(
        0.0,
        math.inf,
        "distributed: parameters, gradients or state a rank holds against the recipe's prediction",
        False,
    ),
    "max_communication_error": Field(
        0.0, math.inf, "distributed: bytes a rank's collectives move per step against the recipe's prediction", False
    ),
    "max_parameter_peak_ratio": Field(
        0.0,
        math.inf,
        "distributed: FSDP full shard's most parameter bytes held at once, over its shards plus the two largest units",
        False,
    ),
    "min_saving_ratio": Field(
        0.0,
        math.inf,
        "distributed: saving per rank against DDP's peak, over the saving the recipe's partition predicts",
        False,
    ),
    "max_saving_ratio": Field(
        0.0,
        math.inf,
        "distributed: saving per rank against DDP's peak, over the saving the recipe's partition predicts",
        False,
    ),
    "max_unexplained_share": Field(
        0.0,
        1.0,
        "distributed: the part of a rank's peak left out by its measured parts (tensors, buffers, activations)",
        False,
    ),
    "max_rank_memory_ratio": Field(
        0.0, math.inf, "distributed: largest per-rank anonymous peak over DDP's", True, MEMORY_RULE
    ),
    "max_offload_resident_ratio": Field(
        0.0,
        math.inf,
        "offload: RAM held after the first forward, over max_memory cpu",
        True,
        LOAD_RULE,
    ),
}


HARDWARE_FIELDS = frozenset(name for name, spec in FIELDS.items() if spec.hardware)


SPEED_FIELDS = frozenset({"min_speedup", "max_slowdown"})  # two spellings of one rule


TASK_FIELDS = frozenset({"min_task_ratio", "max_task_loss"})  # a case scores its labelled set only for these
