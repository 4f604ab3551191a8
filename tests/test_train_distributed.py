"""The distributed scenario's ranks under the real torchrun, on the micro model: what they report, and a
dead or silent rank turned into an outcome that names it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perfgate.distributed import distributed_figures, predicted_rank_bytes
from perfgate.errors import JobOutcome
from perfgate.scenarios.train_distributed import crash_detail, run_ranks

WORLD = 2
TEXTS = ["a short sentence", "another sentence, a little longer than the first", "three", "the fourth text"]


def job(model_dir: Path, recipe: str, **changes: Any) -> dict[str, Any]:
    return {
        "recipe": recipe, "location": str(model_dir), "texts": TEXTS, "batch_size": 4, "seq_len": 16,
        "threads_per_rank": 1, "threads_single": 2, "timing": False, "fault": None, "collective_timeout": 120,
        "policy": {"min_pairs": 2, "budget_seconds": 1.0, "seed": 0}, "bound": None, **changes,
    }  # fmt: skip


def test_zero1_ranks_hold_their_partitions_move_the_predicted_bytes_and_train_as_one_process(micro_model_dir):
    ranks = run_ranks(job(micro_model_dir, "zero1", timing=True), WORLD, deadline=240)
    figures = distributed_figures("zero1", ranks)
    assert [row["rank"] for row in figures["ranks"]] == [0, 1]
    assert figures["max_shard_prediction_error"] == 0.0  # whole parameters, held to the byte
    states = [row["measured"]["optimizer_state"] for row in figures["ranks"]]
    assert sum(states) == 8 * figures["parameter_bytes"] // 4  # the two partitions make AdamW's whole state
    assert figures["max_communication_error"] < 0.05
    assert set(figures["ranks"][0]["communication_calls"]) >= {"allreduce_", "broadcast_"}
    assert figures["max_loss_diff"] < 1e-4  # the first losses equal single-process AdamW's on the global batch
    lead = next(r for r in ranks if r["rank"] == 0)
    assert lead["speed"]["estimate"]["pairs"] >= 2


def test_full_shard_ranks_hold_padded_dim0_shards(micro_model_dir):
    ranks = run_ranks(job(micro_model_dir, "fsdp-full-shard"), WORLD, deadline=240)
    figures = distributed_figures("fsdp-full-shard", ranks)
    for row in figures["ranks"]:
        assert row["errors"]["parameters"] < 0.01, row
        assert row["measured"]["parameters"] < 0.6 * figures["parameter_bytes"]
    assert figures["max_communication_error"] < 0.05, figures["ranks"][0]["communication_calls"]
    assert figures["max_loss_diff"] is None  # not timed: no single-process reference in this job


@pytest.mark.parametrize(
    ("fault", "outcome", "named"),
    [
        ({"kind": "kill", "rank": 1, "step": 1}, "crashed", "rank 1 of 2 died (killed by SIGKILL)"),
        ({"kind": "hang", "rank": 1, "step": 1}, "timeout", "Rank 1 is the furthest behind"),
    ],
)
def test_a_dead_or_silent_rank_is_the_case_outcome_naming_it(micro_model_dir, fault, outcome, named):
    started = time.monotonic()
    with pytest.raises(JobOutcome) as raised:
        run_ranks(job(micro_model_dir, "ddp", fault=fault), WORLD, deadline=30)
    assert raised.value.outcome == outcome
    assert named in str(raised.value)
    assert time.monotonic() - started < 55  # stopped, not left to gloo's own timeout


def test_torchruns_root_cause_names_the_rank_and_its_signal():
    output = """[rank0]: waiting
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_21:10:00
  host      : runner
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4242"""
    assert crash_detail(output, [0, 1], 2) == "rank 1 of 2 died (killed by SIGKILL); ranks [0, 1] did not report"
    assert "exit code 3" in crash_detail(output.replace("-9 (pid", "3 (pid"), [1], 2)
    assert crash_detail("no summary", [1], 2) == "torchrun failed; ranks [1] of 2 did not report"


def test_predicted_bytes_per_rank_follow_each_engine():
    shapes = [[10, 4], [3], [5, 2]]  # 40 + 3 + 10 = 53 elements
    ddp = predicted_rank_bytes("ddp", shapes, 2)
    assert ddp == [{"parameters": 212, "gradients": 212, "optimizer_state": 424}] * 2
    zero1 = predicted_rank_bytes("zero1", shapes, 2)
    assert [r["optimizer_state"] for r in zero1] == [8 * 40, 8 * 13]  # 40 alone; 10 then 3 to the other
    full = predicted_rank_bytes("fsdp-full-shard", shapes, 2)
    assert [r["parameters"] for r in full] == [4 * (20 + 2 + 6), 4 * (20 + 2 + 6)]  # ceil(dim0/2) rows, padded
    assert [r["gradients"] for r in full] == [4 * (20 + 2 + 6), 4 * (20 + 1 + 4)]  # the last chunks short
    with pytest.raises(ValueError, match="one of ddp"):
        predicted_rank_bytes("zero2", shapes, 2)


def test_figures_flag_a_rank_that_holds_more_than_its_share():
    shapes = [[10, 4], [3], [5, 2]]

    def report(rank: int, state: int) -> dict[str, Any]:
        return {"rank": rank, "shapes": shapes, "parameters": {"storage_bytes": 212}, "gradients": 212,
                "optimizer_state": state, "communication": {"bytes": 424, "calls": {"allreduce_": 1}},
                "memory": {"before_model": {"anon": 0}, "held": {"anon": 10}, "peak": {"max": {"anon": 20}}},
                "losses": [1.0], "reference_losses": [1.0]}  # fmt: skip

    honest = distributed_figures("zero1", [report(0, 320), report(1, 104)])
    assert honest["max_shard_prediction_error"] == 0.0
    assert honest["max_communication_error"] == pytest.approx(1 / 3)  # 2Ψ moved where ZeRO-1 moves 3Ψ
    unsharded = distributed_figures("zero1", [report(0, 424), report(1, 424)])  # every rank kept all state
    assert unsharded["max_shard_prediction_error"] == pytest.approx(424 / 104 - 1)
