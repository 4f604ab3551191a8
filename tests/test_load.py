"""The load scenario's figures: the anonymous peak beyond the runtime's, the checks it feeds, and the
section of the report; the worker refuses a technique that is not a load strategy."""

from __future__ import annotations

import pytest

from perfgate.engine.metrics.load import LoadMetric
from perfgate.engine.record import CaseResult
from perfgate.engine.scenarios.load import load_figures, stored_bytes
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.verdicts.thresholds import Thresholds

MB = 2**20


def worker_data(peak_anon: int, diff: float = 0.0) -> dict:
    return {
        "technique": "load-x", "stored_bytes": 500 * MB, "ready_seconds": 0.5, "first_forward_seconds": 0.2,
        "held": {}, "peak_rss": 900 * MB, "max_abs_diff": diff,
        "details": {"placement_bytes": {"cpu": 150 * MB, "disk": 336 * MB}, "max_memory_cpu": 200 * MB},
        "serve_window": [1.0, 2.0], "after": {"model_file": 150 * MB, "anon": 300 * MB},
        "sampled": {"samples": 40, "interval_seconds": 0.005, "at_peak": {"rss": 890 * MB},
                    "max": {"anon": peak_anon, "file": 560 * MB}},
    }  # fmt: skip


def test_the_anonymous_peak_is_counted_beyond_the_runtimes_own():
    figures = load_figures(worker_data(peak_anon=330 * MB), {"after": {"anon": 260 * MB}})
    assert figures["anon_peak"] == 70 * MB
    assert figures["anon_peak_ratio"] == pytest.approx(70 / 500)
    assert figures["sampled_share_of_hwm"] == pytest.approx(890 / 900)
    assert "serve_window" not in figures


def test_samples_that_missed_the_high_water_mark_are_reported_and_not_judged():
    data = worker_data(peak_anon=330 * MB)
    data["sampled"]["at_peak"]["rss"] = 600 * MB  # the kernel's peak was 900: a spike between samples
    figures = load_figures(data, {"after": {"anon": 260 * MB}})
    assert figures["sampling_missed_peak"] is True
    assert "anon_peak_ratio" not in figures
    thresholds = Thresholds("load-x", "c", True, {"max_load_anon_ratio": 0.2}, {"max_load_anon_ratio": "f"})
    assert LoadMetric().checks(figures, thresholds, "m") == []


def test_a_load_that_copies_every_weight_fails_the_same_dtype_bound_that_a_mapped_load_meets():
    thresholds = Thresholds("load-x", "c", True, {"max_load_anon_ratio": 0.2, "max_load_output_diff": 0.0},
                            {"max_load_anon_ratio": "f", "max_load_output_diff": "f"})  # fmt: skip
    mapped = load_figures(worker_data(peak_anon=330 * MB), {"after": {"anon": 260 * MB}})
    copied = load_figures(worker_data(peak_anon=900 * MB), {"after": {"anon": 260 * MB}})
    verdicts = {c.name: c.verdict for c in LoadMetric().checks(mapped, thresholds, "m")}
    assert verdicts == {"max_load_anon_ratio": "pass", "max_load_output_diff": "pass"}
    verdicts = {c.name: c.verdict for c in LoadMetric().checks(copied, thresholds, "m")}
    assert verdicts["max_load_anon_ratio"] == "fail"
    different = load_figures(worker_data(peak_anon=330 * MB, diff=1e-3), {"after": {"anon": 260 * MB}})
    verdicts = {c.name: c.verdict for c in LoadMetric().checks(different, thresholds, "m")}
    assert verdicts["max_load_output_diff"] == "fail", "exact equality means any difference fails"


def test_the_section_shows_times_peaks_and_placement():
    case = CaseResult(CaseSpec("gpt2", "load-offload", scenario="load"), "c", outcome=Outcome.MEASURED)
    case.metrics["load"] = load_figures(worker_data(peak_anon=345 * MB), {"after": {"anon": 260 * MB}})
    text = "\n".join(LoadMetric().section([case]))
    row = "| gpt2 | load-offload | 500 | 0.50 | 0.20 | 85 | 560 | 150 | cpu 150, disk 336 | 190/200 MiB (0.95x) | 0 |"
    assert row in text


def test_an_offloaded_model_is_held_to_its_ram_budget_with_the_runtimes_memory_left_out():
    thresholds = Thresholds(
        "load-x", "c", True, {"max_offload_resident_ratio": 1.2}, {"max_offload_resident_ratio": "f"}
    )
    within = load_figures(worker_data(peak_anon=330 * MB), {"after": {"anon": 260 * MB}})
    assert within["resident_after"] == 150 * MB + 40 * MB
    assert [c.verdict for c in LoadMetric().checks(within, thresholds, "m")] == ["pass"]
    data = worker_data(peak_anon=330 * MB)
    data["after"]["anon"] = 400 * MB  # 140 MiB beyond the runtime: 290 MiB against a 200 MiB budget
    over = load_figures(data, {"after": {"anon": 260 * MB}})
    assert [c.verdict for c in LoadMetric().checks(over, thresholds, "m")] == ["fail"]


def test_stored_bytes_count_weight_files_only(tmp_path):
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"x" * 100)
    (tmp_path / "model-00002-of-00002.safetensors").write_bytes(b"x" * 50)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pytorch_model.bin").write_bytes(b"x" * 1000)
    assert stored_bytes(tmp_path) == 150


def test_the_worker_refuses_a_technique_that_is_not_a_load_strategy(micro_model_dir, tmp_path):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.engine.scenarios.load import Load
    from perfgate.subjects.catalogue import import_path

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("fp32-eager"), "workdir": str(tmp_path), "threads": 1, "texts": 2,
        "eval_texts": ["The train was late."], "reference": str(tmp_path / "none.npy"),
    }  # fmt: skip
    with pytest.raises(TypeError, match="fp32-eager is not a load strategy"):
        Load().run(payload, WorkerState())


def test_a_strategy_in_the_worker_matches_the_reference_it_wrote(micro_model_dir, tmp_path):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.engine.scenarios.load import Load
    from perfgate.subjects.catalogue import import_path

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("load-safetensors"), "workdir": str(tmp_path), "threads": 1, "texts": 2,
        "eval_texts": ["The train was late.", "A cat sat on the mat."],
    }  # fmt: skip
    Load().run({**payload, "write_reference": str(tmp_path / "reference.npy")}, WorkerState())
    data = Load().run({**payload, "technique": import_path("load-bf16"), "reference": str(tmp_path / "reference.npy")},
                      WorkerState())  # fmt: skip
    assert 0 < data["max_abs_diff"] < 0.05 * data["reference_scale"], "bf16 differs, by its rounding"
    assert data["details"]["placement_bytes"]["cpu"] > 0
    assert data["ready_seconds"] > 0
    assert data["first_forward_seconds"] > 0


def run_under_cap(micro_model_dir, tmp_path, cap_bytes: int):  # type: ignore[no-untyped-def]
    from perfgate.engine.scenarios.load import LoadUnderCap
    from perfgate.subjects.catalogue import import_path
    from tests.capped import submit_in_cgroup

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("load-safetensors"), "workdir": str(tmp_path), "threads": 1, "texts": 2,
        "eval_texts": ["The train was late."], "cap_bytes": cap_bytes,
    }  # fmt: skip
    return submit_in_cgroup(tmp_path, LoadUnderCap(), payload)


def test_under_a_cap_a_load_that_fits_reports_its_charged_peak_and_one_that_does_not_is_killed(
    micro_model_dir, tmp_path
):
    fits = run_under_cap(micro_model_dir, tmp_path, 256 * MB)
    assert fits.outcome == Outcome.MEASURED, fits.detail
    charged = fits.data["cgroup"]["peak"] - fits.data["cgroup"]["base"]
    assert 0 < charged <= 256 * MB
    killed = run_under_cap(micro_model_dir, tmp_path, 256 * 1024)
    assert killed.outcome == Outcome.OOM, (killed.outcome, killed.detail)
    assert "inside its memory cgroup" in killed.detail
    assert "batch_size" not in killed.detail


def test_an_offloading_load_leaves_no_offload_folder_behind(micro_model_dir, tmp_path):
    from perfgate.engine.scenarios import WorkerState
    from perfgate.engine.scenarios.load import Load
    from perfgate.subjects.catalogue import import_path
    from perfgate.subjects.techniques.loading import OffloadToDisk

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("load-offload"), "workdir": str(tmp_path), "threads": 1, "texts": 2,
        "eval_texts": ["The train was late."],
    }  # fmt: skip
    data = Load().run(payload, WorkerState())
    assert data["details"]["max_memory_cpu"] == OffloadToDisk.max_memory_cpu
    assert not OffloadToDisk().folder(tmp_path).exists()
