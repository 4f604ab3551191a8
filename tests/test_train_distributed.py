"""The distributed scenario's ranks under the real torchrun, on the micro model: what they report, and a
dead or silent rank turned into an outcome that names it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perfgate.engine.scenarios.train_distributed import crash_detail, run_ranks
from perfgate.errors import JobOutcome
from perfgate.subjects.distributed.figures import distributed_figures
from perfgate.subjects.distributed.predictions import predicted_rank_bytes

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
    # DDP under ZeRO-1 as users configure it: the gradients are views into the all-reduce buckets
    assert lead["engine"] == {"buckets": figures["parameter_bytes"], "gradients_in_buckets": True, "name": "zero1"}
    assert all(report["activations"] > 0 for report in ranks)
    for row in figures["ranks"]:
        assert set(row["phase_peaks"]) == {"forward", "backward", "optimizer step"}, row
        assert set(row["live_phase_peaks"]) == {"forward", "backward", "optimizer step"}, row
    # Where a rank's live peak is its optimizer step, its parts explain it to the byte but for a few: what
    # it holds and AdamW's two temporaries of the largest parameter it updates.
    stepping = [row for row in figures["ranks"] if row["live_peak_phase"] == "optimizer step"]
    assert stepping, figures["ranks"]
    assert all(abs(row["unexplained"]) <= 0.01 * row["live_peak"] for row in stepping), stepping


def test_full_shard_ranks_hold_padded_dim0_shards(micro_model_dir):
    ranks = run_ranks(job(micro_model_dir, "fsdp-full-shard"), WORLD, deadline=240)
    figures = distributed_figures("fsdp-full-shard", ranks)
    for row in figures["ranks"]:
        assert row["errors"]["parameters"] < 0.01, row
        assert row["measured"]["parameters"] < 0.6 * figures["parameter_bytes"]
    assert figures["max_communication_error"] < 0.05, figures["ranks"][0]["communication_calls"]
    assert figures["max_loss_diff"] is None  # not timed: no single-process reference in this job
    # Within a step: never more than the shards plus two units unsharded at once (the one computing and
    # the one prefetched), though every unit was unsharded at some point.
    assert figures["max_parameter_peak_ratio"] <= 1.0, figures["ranks"]
    for row in figures["ranks"]:
        assert 1 <= row["parameter_peak_units"] <= 2, row
        assert row["parameter_peak"] > row["measured"]["parameters"]


def test_shard_grad_op_holds_every_unit_unsharded_at_once(micro_model_dir):
    ranks = run_ranks(job(micro_model_dir, "fsdp-shard-grad-op"), WORLD, deadline=240)
    figures = distributed_figures("fsdp-shard-grad-op", ranks)
    assert "max_parameter_peak_ratio" not in figures  # no bound: it keeps the units from forward to backward
    for row in figures["ranks"]:
        units = len(next(r for r in ranks if r["rank"] == row["rank"])["unsharded"]["unit_bytes"])
        assert row["parameter_peak_units"] == units
        assert row["parameter_peak"] == row["measured"]["parameters"] + figures["parameter_bytes"]


@pytest.mark.parametrize(
    ("fault", "outcome", "named", "deadline"),
    [
        # the killed rank's case has room to start on a loaded runner; the hang's deadline is what ends it
        ({"kind": "kill", "rank": 1, "step": 1}, "crashed", "rank 1 of 2 died (killed by SIGKILL)", 60),
        ({"kind": "hang", "rank": 1, "step": 1}, "timeout", "Rank 1 is the furthest behind", 30),
    ],
)
def test_a_dead_or_silent_rank_is_the_case_outcome_naming_it(micro_model_dir, fault, outcome, named, deadline):
    started = time.monotonic()
    with pytest.raises(JobOutcome) as raised:
        run_ranks(job(micro_model_dir, "ddp", fault=fault), WORLD, deadline=deadline)
    assert raised.value.outcome == outcome
    assert named in str(raised.value)
    assert time.monotonic() - started < deadline + 25  # stopped, not left to gloo's own 120 s timeout


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


def test_a_killed_rank_is_named_though_its_peer_s_error_is_torchrun_s_root_cause():
    # rank 1 was killed; rank 0's gloo call failed within the same second and torchrun chose it as the
    # "first observed failure" (its timestamps have whole seconds)
    output = """perfgate.subjects.distributed.rank FAILED
------------------------------------------------------------
Failures:
[1]:
  time      : 2026-12-03_21:10:00
  host      : runner
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4243)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4243
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-03_21:10:00
  host      : runner
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html"""
    assert crash_detail(output, [0, 1], 2) == "rank 1 of 2 died (killed by SIGKILL); ranks [0, 1] did not report"
    errors_only = output.replace("-9 (pid: 4243)", "3 (pid: 4243)")
    assert crash_detail(errors_only, [0, 1], 2) == "rank 0 of 2 died (exit code 1); ranks [0, 1] did not report"


def test_a_stall_names_the_furthest_behind_only_when_one_rank_is(tmp_path):
    from perfgate.engine.scenarios.train_distributed import stall_detail

    (tmp_path / "rank-0.progress").write_text("2 optimizer step")
    (tmp_path / "rank-1.progress").write_text("2 forward")
    assert "Rank 1 is the furthest behind" in stall_detail(tmp_path, 2, 30)
    for rank in (0, 1):  # both stalled while timing, where marks stop: nothing tells them apart
        (tmp_path / f"rank-{rank}.progress").write_text("4 timing")
    detail = stall_detail(tmp_path, 2, 30)
    assert "furthest behind" not in detail
    assert "Ranks [0, 1] were last seen at the same point: which one the others wait for is not known" in detail


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


SHAPES = [[10, 4], [3], [5, 2]]  # 53 elements: 212 bytes of fp32


def rank_report(rank: int, state: int, traffic: int = 424) -> dict[str, Any]:
    """A rank's report as ``distributed.rank`` writes it, for a three-parameter model under ZeRO-1."""
    return {"rank": rank, "shapes": SHAPES, "parameters": {"storage_bytes": 212}, "gradients": 212,
            "optimizer_state": state, "communication": {"bytes": traffic, "calls": {"allreduce_": 1}},
            "memory": {"before_model": {"anon": 0}, "held": {"anon": 10}, "peak": {"max": {"anon": 20}}},
            "losses": [1.0], "reference_losses": [1.0]}  # fmt: skip


def test_figures_flag_a_rank_that_holds_more_than_its_share():
    honest = distributed_figures("zero1", [rank_report(0, 320, 636), rank_report(1, 104, 636)])
    assert honest["max_shard_prediction_error"] == 0.0
    assert honest["max_communication_error"] == 0.0  # 3 x 212 bytes: DDP's all-reduce and the broadcasts
    unsharded = distributed_figures("zero1", [rank_report(0, 424), rank_report(1, 424)])  # all state everywhere
    assert unsharded["max_shard_prediction_error"] == pytest.approx(424 / 104 - 1)
    assert unsharded["max_communication_error"] == pytest.approx(1 / 3)  # 2Ψ moved where ZeRO-1 moves 3Ψ


def test_a_full_shard_rank_holding_three_units_at_once_fails_its_bound():
    from perfgate.engine.metrics.distributed import Distributed
    from perfgate.verdicts.thresholds import Thresholds

    def report(rank: int, units: list[int]) -> dict[str, Any]:
        unit_bytes = [40, 100, 72]  # the parameters of SHAPES as three units, the last the root's own
        held = {**rank_report(rank, 212), "parameters": {"storage_bytes": 108 if rank == 0 else 104}}
        return {**held, "unsharded": {"peak_bytes": sum(unit_bytes[u] for u in units), "peak_units": units,
                                      "unit_bytes": unit_bytes}}  # fmt: skip

    limits = {"max_parameter_peak_ratio": 1.0}
    thresholds = Thresholds("train-fsdp-full-shard", "cpu-avx2", True, limits, {"max_parameter_peak_ratio": "test"})
    honest = distributed_figures("fsdp-full-shard", [report(0, [1, 2]), report(1, [1, 2])])
    assert honest["max_parameter_peak_ratio"] == 1.0
    planted = distributed_figures("fsdp-full-shard", [report(0, [0, 1, 2]), report(1, [1, 2])])  # all three
    assert planted["max_parameter_peak_ratio"] == pytest.approx((108 + 212) / (108 + 172))
    verdicts = {c.name: c.verdict for c in Distributed().checks(planted, thresholds, "case")}
    assert verdicts["max_parameter_peak_ratio"] == "fail"
    assert {c.name: c.verdict for c in Distributed().checks(honest, thresholds, "case")}[
        "max_parameter_peak_ratio"
    ] == "pass"


def test_the_metric_judges_each_figure_and_a_planted_unsharded_rank_fails():
    from perfgate.engine.metrics.distributed import Distributed
    from perfgate.verdicts.thresholds import Thresholds

    limits = {"max_shard_prediction_error": 0.0, "max_communication_error": 0.01, "max_loss_diff": 1e-6,
              "max_rank_memory_ratio": 0.95}  # fmt: skip
    thresholds = Thresholds("train-zero1", "cpu-avx2", True, limits, dict.fromkeys(limits, "test"))
    honest = distributed_figures("zero1", [rank_report(0, 320, 636), rank_report(1, 104, 636)])
    honest["memory"] = {"ratio": 0.87}
    assert all(c.verdict == "pass" for c in Distributed().checks(honest, thresholds, "case")), Distributed().checks(
        honest, thresholds, "case"
    )
    planted = distributed_figures("zero1", [rank_report(0, 424, 636), rank_report(1, 424, 636)])
    planted["memory"] = {"ratio": 1.0}
    failed = {c.name for c in Distributed().checks(planted, thresholds, "case") if c.verdict == "fail"}
    assert failed == {"max_shard_prediction_error", "max_rank_memory_ratio"}
    assert Distributed().cells(planted)["train"] == "2 ranks; peak/rank 0 MiB (1.00x DDP); loss Δ 0"


def test_no_rank_outlives_a_worker_killed_with_sigkill(micro_model_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import psutil

    script = (
        "import sys; from pathlib import Path; from tests.test_train_distributed import job; "
        "from perfgate.engine.scenarios.train_distributed import run_ranks; "
        "run_ranks(job(Path(sys.argv[1]), 'ddp', fault={'kind': 'hang', 'rank': 1, 'step': 1}), 2, deadline=300)"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script, str(micro_model_dir)], env={**os.environ, "TMPDIR": str(tmp_path)}
    )

    def ours() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            if any(str(tmp_path) in part for part in process.info["cmdline"] or []):
                found.append(process)
        return found

    deadline = time.monotonic() + 40
    while len(ours()) < 3 and time.monotonic() < deadline:  # torchrun and its two ranks
        time.sleep(0.5)
    assert len(ours()) >= 3, "the ranks never started"
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 20
    while ours() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ours(), [p.info["cmdline"] for p in ours()]


def test_a_rank_asks_to_die_with_torchrun_before_it_imports_torch(tmp_path):
    import subprocess
    import sys

    probe = (
        "import sys, pathlib\n"
        "from perfgate.subjects.distributed import rank as distributed_rank\n"
        "distributed_rank._die_with_parent = lambda: print('torch imported:', 'torch' in sys.modules)\n"
        "try:\n"
        f"    distributed_rank.main(pathlib.Path({str(tmp_path)!r}))\n"
        "except FileNotFoundError:\n"
        "    pass\n"  # no job.json: the probe stops there
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "torch imported: False", done.stdout + done.stderr


def test_the_predicted_saving_is_what_the_partition_no_longer_holds_less_what_the_engine_holds_beyond():
    from perfgate.subjects.distributed.predictions import predicted_live_peak, predicted_saving

    # DDP holds 212 + 212 + 424 bytes a rank; its step adds AdamW's two temporaries of the largest parameter
    # (40 elements: 320 bytes), more than the forward's 100 bytes of activations: a live peak of 1168.
    assert predicted_live_peak("ddp", SHAPES, 2, activations=100) == [1168, 1168]
    assert predicted_saving("ddp", SHAPES, 2, activations=100) == 0
    # ZeRO-1: rank 0 owns the 40 elements (320 bytes of state, the same temporaries), rank 1 the other 13.
    assert predicted_live_peak("zero1", SHAPES, 2, activations=100) == [212 + 212 + 320 + 320, 212 + 212 + 104 + 100]
    assert predicted_saving("zero1", SHAPES, 2, activations=100) == 1168 - 1064
    assert predicted_saving("ddp-grad-copy", SHAPES, 2, activations=100) == -212  # buckets beside the gradients
    # FSDP rank 0: 5 rows of 4, 2 of 1, 3 of 2 = 28 elements: 112 bytes of parameters, 112 of gradients, 224
    # of state; forward and backward add the activations and the units unsharded: every unit (212 bytes) for
    # shard-grad-op, the two largest (100 + 72) for full shard; its step only the temporaries of 20 elements.
    assert predicted_saving("fsdp-shard-grad-op", SHAPES, 2, activations=100) == 1168 - (448 + 100 + 212)
    assert predicted_saving("fsdp-full-shard", SHAPES, 2, 100, unit_bytes=[40, 100, 72]) == 1168 - (448 + 100 + 172)


def saving_case(recipe: str, anon: tuple[float, float], live: tuple[float, float], predicted: float) -> dict[str, Any]:
    """A case's figures in MiB: (the recipe's, DDP's) anonymous and live peaks, the predicted saving."""
    from perfgate.subjects.distributed.figures import memory_against_ddp

    mib = 2**20
    figures = {"recipe": recipe, "world": 2, "max_anon_peak": int(anon[0] * mib), "max_live_peak": int(live[0] * mib),
               "predicted_saving": int(predicted * mib), "max_shard_prediction_error": 0.0,
               "max_communication_error": 0.0, "max_loss_diff": None}  # fmt: skip
    figures["memory"] = memory_against_ddp(figures, {"anon": int(anon[1] * mib), "live": int(live[1] * mib)})
    return figures


def test_a_saving_is_judged_against_its_prediction_and_a_peak_that_cannot_resolve_it_is_said_not_passed():
    from perfgate.engine.metrics.distributed import Distributed
    from perfgate.verdicts.thresholds import Thresholds

    limits = {"min_saving_ratio": 0.9, "max_saving_ratio": 1.1, "max_rank_memory_ratio": 0.95,
              "max_shard_prediction_error": 0.01, "max_communication_error": 0.01}  # fmt: skip
    thresholds = Thresholds("train-zero1", "cpu-avx2", True, limits, dict.fromkeys(limits, "test"))

    def verdicts(figures: dict[str, Any]) -> dict[str, str]:
        return {c.name: c.verdict for c in Distributed().checks(figures, thresholds, "case")}

    honest = saving_case("zero1", anon=(522, 608), live=(352.1, 436.0), predicted=83.9)  # MiniLM, as measured
    assert honest["memory"]["saving_ratio"] == pytest.approx(1.0, abs=0.01)
    assert verdicts(honest) == dict.fromkeys(limits, "pass")
    whole_state = saving_case("zero1", anon=(603, 608), live=(436.0, 436.0), predicted=83.9)  # AdamW's all on each
    assert verdicts(whole_state)["min_saving_ratio"] == "fail"
    assert verdicts(whole_state)["max_rank_memory_ratio"] == "fail"
    # tiny-bert: 3.7 MiB predicted beside an anonymous peak of 252 that moved 0.96-1.02 of DDP's over runs
    small = saving_case("zero1", anon=(255, 252), live=(94.3, 98.0), predicted=3.7)
    assert small["memory"]["resolved"] is False
    assert "max_rank_memory_ratio" not in verdicts(small)  # said, not judged
    assert verdicts(small)["min_saving_ratio"] == "pass"  # the live bytes resolve it
    assert "the anonymous peak cannot resolve the saving" in Distributed().cells(small)["train"]
    assert "below what the anonymous peak resolves (5% of DDP's 252 MiB)" in small["memory"]["note"]
    unsaved = saving_case("zero1", anon=(255, 252), live=(98.0, 98.0), predicted=3.7)  # a saving gone, in bytes
    assert verdicts(unsaved)["min_saving_ratio"] == "fail"


def test_a_rank_s_live_peak_splits_into_its_measured_parts_in_the_phase_it_fell_in():
    def report(rank: int, in_buckets: bool, live: dict[str, int]) -> dict[str, Any]:
        base = rank_report(rank, 424)
        phase_peaks = {"forward": 1800, "backward": 2000, "optimizer step": 1900}  # sampled anonymous memory
        return {**base, "engine": {"buckets": 212, "gradients_in_buckets": in_buckets}, "activations": 300,
                "live": {"phase_peaks": live, "held_end": 848},
                "memory": {**base["memory"], "peak": {"max": {"anon": 2000}}, "phase_peaks": phase_peaks}}  # fmt: skip

    # DDP holds 212 + 212 + 424; its step adds AdamW's temporaries of the 40-element parameter: 320
    live = {"forward": 1148, "backward": 1100, "optimizer step": 1168}
    views = distributed_figures("ddp", [report(0, True, live), report(1, True, live)])
    row = views["ranks"][0]
    assert row["live_peak_phase"] == "optimizer step"
    assert row["breakdown"] == {"parameters": 212, "gradients": 212, "optimizer_state": 424, "engine_buffers": 0,
                                "optimizer_temporaries": 320}  # fmt: skip
    assert row["unexplained"] == 0
    assert row["allocator_and_runtime"] == 2000 - 1168
    assert row["peak_phase"] == "backward"  # of the sampled anonymous memory
    # torch's default DDP: the buckets beside the gradients, 20 bytes the parts do not explain
    live = {"forward": 1360, "backward": 1300, "optimizer step": 1400}
    copies = distributed_figures("ddp-grad-copy", [report(0, False, live), report(1, False, live)])
    assert copies["ranks"][0]["breakdown"]["engine_buffers"] == 212
    assert copies["max_unexplained_share"] == pytest.approx(20 / 1400)
    # a forward peak: the activations, not the temporaries
    live = {"forward": 1200, "backward": 1100, "optimizer step": 1168}
    figures = distributed_figures("ddp", [report(0, True, live), report(1, True, live)])
    forward = figures["ranks"][0]
    assert forward["breakdown"]["activations"] == 300
    assert "optimizer_temporaries" not in forward["breakdown"]
    assert forward["unexplained"] == 1200 - 1148
    assert "max_unexplained_share" not in figures  # reported beside the parts, bounded only at the step


def test_mixed_precision_moves_bf16_parameters_and_holds_fp32_shards():
    from perfgate.subjects.distributed.predictions import predicted_communication_bytes, predicted_live_peak

    assert predicted_communication_bytes("fsdp-mixed-precision", 100) == 200  # two bf16 all-gathers, fp32 reduction
    assert predicted_rank_bytes("fsdp-mixed-precision", SHAPES, 2) == predicted_rank_bytes("fsdp-full-shard", SHAPES, 2)
    # its two largest units unsharded in bf16: half of full shard's 172 bytes
    full = predicted_live_peak("fsdp-full-shard", SHAPES, 2, activations=100, unit_bytes=[40, 100, 72])
    mixed = predicted_live_peak("fsdp-mixed-precision", SHAPES, 2, activations=100, unit_bytes=[40, 100, 72])
    assert [a - b for a, b in zip(full, mixed, strict=True)] == [86, 86]


def test_a_case_at_another_rank_count_says_its_ratios_are_recorded_and_when_ranks_outnumber_cores():
    from perfgate.engine.scenarios.train_distributed import world_note

    assert world_note(4, 2, 16) == (
        "4 ranks, where the thresholds' speed and memory ratios were measured at 2: recorded, not gated; "
        "held bytes, traffic and the saving against their predictions are judged"
    )
    oversubscribed = world_note(4, 2, 2)
    assert oversubscribed.endswith(
        ". 4 ranks on 2 cores: the speed is the ranks' overhead on shared cores, not scaling"
    )


def distributed_payload(model_dir: Path, fault: dict[str, Any]) -> dict[str, Any]:
    return {"recipe": "ddp", "model": {"location": str(model_dir)}, "eval_texts": TEXTS, "batch_size": 4,
            "seq_len": 16, "world": WORLD, "policy": {"min_pairs": 2, "budget_seconds": 1.0, "seed": 0},
            "bound": None, "timing": False, "fault": fault, "deadline": 120}  # fmt: skip


def test_a_start_up_crash_before_any_rank_joins_is_started_once_more_and_said(micro_model_dir, tmp_path):
    """A starved torchrun start can abort a rank before the process group exists ("terminate called
    without an active exception", beside a CPU hog): once is the machine, twice is the case's outcome."""
    from perfgate.engine.scenarios.train_distributed import TrainDistributed

    once = {"kind": "abort-at-start", "rank": 1, "once": str(tmp_path / "aborted-once")}
    data = TrainDistributed().run(distributed_payload(micro_model_dir, once), None)
    assert [report["rank"] for report in data["ranks"]] == [0, 1]
    assert "first start crashed before any joined the process group" in data["restarted"]
    assert "rank 1 of 2 died (SIGABRT" in data["restarted"] or "did not report" in data["restarted"], data
    with pytest.raises(JobOutcome) as raised:
        TrainDistributed().run(distributed_payload(micro_model_dir, {"kind": "abort-at-start", "rank": 1}), None)
    assert raised.value.outcome == "crashed"
