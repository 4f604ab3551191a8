"""The training loop's pieces on a micro model, the train-step scenario's figures, and its metric."""

from __future__ import annotations

import pytest

from perfgate.engine.metrics.training import Training
from perfgate.engine.record import CaseResult
from perfgate.engine.scenarios.train_step import memory_figures, recipe_of
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.subjects.training import Recipe, split_batch
from perfgate.verdicts.thresholds import Thresholds

MB = 2**20


def test_a_recipe_refuses_an_unknown_optimizer_and_a_zero_accumulation():
    with pytest.raises(ValueError, match="optim='lion' is not one of"):
        Recipe(optim="lion")
    with pytest.raises(ValueError, match="gradient_accumulation_steps=0 must be at least 1"):
        Recipe(gradient_accumulation_steps=0)


def test_a_batch_splits_into_equal_micro_batches_or_says_why_not():
    import torch

    batch = {"input_ids": torch.arange(16).reshape(8, 2), "labels": torch.arange(8)}
    parts = split_batch(batch, 4)
    assert [len(p["labels"]) for p in parts] == [2, 2, 2, 2]
    assert torch.equal(torch.cat([p["input_ids"] for p in parts]), batch["input_ids"])
    with pytest.raises(ValueError, match="batch size 8 is not divisible by gradient_accumulation_steps=3"):
        split_batch(batch, 3)


def test_steps_from_the_same_weights_on_the_same_batches_give_the_same_losses(micro_model_dir):
    from perfgate.subjects.training import StepRunner, load_classifier, training_batches

    def losses(recipe: Recipe) -> list[float]:
        import transformers

        runner = StepRunner(load_classifier(micro_model_dir, "cpu"), recipe, "cpu")
        tokenizer = transformers.AutoTokenizer.from_pretrained(micro_model_dir)
        batches = training_batches(tokenizer, ["The train was late.", "A cat sat."], 4, 16, 3, "cpu")
        return [runner.step(batch) for batch in batches]

    plain = losses(Recipe())
    assert losses(Recipe()) == plain, "seeded weights, seeded batches, no dropout: a step is deterministic"
    assert losses(Recipe(gradient_accumulation_steps=2)) == pytest.approx(plain, rel=1e-5)
    assert losses(Recipe(optim="adafactor"))[1:] != pytest.approx(plain[1:], rel=1e-5), "another optimizer moves"


def test_the_scenario_refuses_a_technique_that_is_not_a_training_recipe():
    from perfgate.subjects.catalogue import import_path

    assert recipe_of(import_path("train-adafactor")) == Recipe(optim="adafactor")
    with pytest.raises(TypeError, match="fp32-eager is not a training recipe"):
        recipe_of(import_path("fp32-eager"))


def test_a_training_recipe_has_no_inference_variant(micro_model_dir, tmp_path):
    from perfgate.subjects.model import load_model
    from perfgate.subjects.techniques.training import GradientCheckpointing

    model = load_model("micro", "text-classification", micro_model_dir)
    with pytest.raises(TypeError, match="scenario='train-step'"):
        GradientCheckpointing().apply(model, tmp_path, 1)


def memory(anon_peak: int, state: int, predicted: int) -> dict:
    return memory_figures({
        "held": {"anon": 300 * MB}, "after": {}, "peak_rss": 900 * MB, "serve_window": [0, 1],
        "sampled": {"max": {"anon": 300 * MB + anon_peak}}, "optimizer_state_bytes": state,
        "predicted_state_bytes": predicted, "parameters": 10, "steps": 3,
    })  # fmt: skip


def training_figures(loss_diff: float, candidate_peak: int, state: int, predicted: int) -> dict:
    base, cand = memory(1000 * MB, 180 * MB, 180 * MB), memory(candidate_peak, state, predicted)
    return {
        "recipe": {}, "technique": "train-x", "batch_size": 8, "seq_len": 64, "losses": {},
        "max_loss_diff": loss_diff, "samples_per_second": {"baseline": 20.0, "candidate": 25.0},
        "memory": {"baseline": base, "candidate": cand, "ratio": cand["anon_peak"] / base["anon_peak"]},
    }  # fmt: skip


def test_the_training_checks_pass_and_fail_on_each_figure():
    limits = {"max_loss_diff": 0.01, "max_train_memory_ratio": 0.9, "max_state_prediction_error": 0.0}
    thresholds = Thresholds("train-x", "c", True, limits, dict.fromkeys(limits, "f"))
    good = training_figures(0.001, 800 * MB, 46 * MB, 46 * MB)
    assert {c.verdict for c in Training().checks(good, thresholds, "m")} == {"pass"}
    bad = training_figures(0.05, 950 * MB, 47 * MB, 46 * MB)
    assert {c.name: c.verdict for c in Training().checks(bad, thresholds, "m")} == {
        "max_loss_diff": "fail", "max_train_memory_ratio": "fail", "max_state_prediction_error": "fail"}  # fmt: skip


def test_the_training_section_puts_the_recipe_beside_fp32():
    case = CaseResult(CaseSpec("minilm", "train-x", scenario="train-step"), "c", outcome=Outcome.MEASURED)
    case.metrics["training"] = training_figures(0.001, 800 * MB, 46 * MB, 46 * MB)
    case.metrics["speed"] = {"estimate": {"speedup": 1.25, "ci_low": 1.2, "ci_high": 1.3}}
    text = "\n".join(Training().section([case]))
    assert "| minilm | train-x | 8x64 | 20.0 → 25.0 | 1.25x [1.20, 1.30] | 0.001 | 1000 → 800 | 46.0 (46.0) |" in text


def test_a_recipe_refuses_a_negative_worker_count():
    with pytest.raises(ValueError, match="dataloader_num_workers=-1 must be 0 or more"):
        Recipe(dataloader_num_workers=-1)


@pytest.mark.parametrize(
    ("step", "item", "batch", "steps", "workers", "expected"),
    [
        (1.0, 0.125, 8, 8, 0, 1.0),  # no workers: nothing overlaps
        (1.0, 0.125, 8, 8, 2, 16 / 9),  # loading a batch costs a step: after the first batch, steps back to back
        (1.0, 0.0, 8, 8, 2, 1.0),  # free loading: nothing to gain
        (1.0, 0.5, 8, 4, 2, 20 / 10),  # loading-bound: batches ready at 4, 4, 8, 8; steps end at 5, 6, 9, 10
        (3.0, 0.125, 8, 4, 2, 16 / 13),  # compute-bound: only the first batch's load is left
    ],
)
def test_the_prefetch_prediction_follows_the_loaders_schedule(step, item, batch, steps, workers, expected):
    from perfgate.subjects.training import prefetch_prediction

    assert prefetch_prediction(step, item, batch, steps, workers) == pytest.approx(expected)


def test_the_workers_start_up_delays_every_batch():
    from perfgate.subjects.training import prefetch_prediction

    # batches ready at 1.5, 1.5, 2.5, 2.5: steps end at 2.5, 3.5, 4.5, 5.5 against 8 in the process
    assert prefetch_prediction(1.0, 0.125, 8, 4, 2, startup_seconds=0.5) == pytest.approx(8 / 5.5)


def test_a_loader_with_workers_gives_the_batches_in_order_and_each_fetch_waits(monkeypatch):
    import torch

    from perfgate.subjects import training
    from perfgate.subjects.training import SlowDataset, data_loader, samples_of

    batches = [
        {"input_ids": torch.arange(8).reshape(4, 2) + 8 * i, "labels": torch.arange(4) + 4 * i} for i in range(3)
    ]
    waits: list[float] = []
    monkeypatch.setattr(training.time, "sleep", waits.append)
    dataset = SlowDataset(samples_of(batches), 0.25)
    assert len(dataset) == 12
    dataset[5]
    assert waits == [0.25]
    for workers in (0, 2):
        loaded = list(data_loader(SlowDataset(samples_of(batches), 0.0), 4, workers))
        assert [torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"])
                for a, b in zip(loaded, batches, strict=True)] == [True] * 3  # fmt: skip


@pytest.mark.parametrize("scenario", ["train-step", "train-batch"])
def test_an_in_memory_scenario_refuses_a_loader_recipe_naming_the_scenario_that_measures_it(scenario):
    from types import SimpleNamespace

    from perfgate.engine.scenarios import get_scenario

    case = SimpleNamespace(spec=CaseSpec("minilm", "train-dataloader-workers-2", scenario=scenario))
    with pytest.raises(TypeError, match=f"{scenario} serves batches already in memory.*scenario='train-dataloader'"):
        get_scenario(scenario).conduct(case)  # type: ignore[arg-type]


def loader_figures(efficiency: float) -> dict:
    figures = training_figures(0.0, 800 * MB, 46 * MB, 46 * MB)
    del figures["memory"]
    figures["data"] = {"workers": 2, "steps_per_epoch": 8, "step_seconds": 0.2, "item_seconds": 0.025,
                       "startup_seconds": 0.04, "predicted_speedup": 1.78,
                       "prefetch_efficiency": efficiency}  # fmt: skip
    return figures


def test_the_prefetch_efficiency_passes_and_fails_and_shows_in_the_section():
    thresholds = Thresholds("train-x", "c", True, {"min_prefetch_efficiency": 0.8}, {"min_prefetch_efficiency": "f"})
    assert [c.verdict for c in Training().checks(loader_figures(0.95), thresholds, "m")] == ["pass"]
    assert [c.verdict for c in Training().checks(loader_figures(0.6), thresholds, "m")] == ["fail"]
    case = CaseResult(CaseSpec("minilm", "train-x", scenario="train-dataloader"), "c", outcome=Outcome.MEASURED)
    case.metrics["training"] = loader_figures(0.95)
    text = "\n".join(Training().section([case]))
    assert "| minilm | train-x | 2 | 200 | 25.0 | 40 | 8 | 1.78x | 0.95 |" in text


def batch_figures(base: int, cand: int) -> dict:
    def arm(largest: int) -> dict:
        sweep = [{"batch_size": 2**k, "samples_per_second": 10.0 * 2**k, "peak_bytes": (400 + 30 * 2**k) * MB}
                 for k in range(largest.bit_length())]  # fmt: skip
        return {"technique": "t", "largest": largest, "tries": [], "sweep": sweep}

    return {"seq_len": 128, "cap": {"kind": "cgroup", "version": 1, "budget_bytes": 768 * MB},
            "baseline": arm(base), "candidate": arm(cand), "ratio": cand / base}  # fmt: skip


def test_the_training_batch_ratio_passes_and_fails_and_the_sweep_shows():
    from perfgate.engine.metrics.training import TrainingBatch

    limits = {"min_train_batch_fit_ratio": 2.0}
    thresholds = Thresholds("train-x", "c", True, limits, dict.fromkeys(limits, "f"))
    assert [c.verdict for c in TrainingBatch().checks(batch_figures(8, 20), thresholds, "m")] == ["pass"]
    assert [c.verdict for c in TrainingBatch().checks(batch_figures(8, 12), thresholds, "m")] == ["fail"]
    case = CaseResult(CaseSpec("minilm", "train-x", scenario="train-batch"), "c", outcome=Outcome.MEASURED)
    case.metrics["train_batch"] = batch_figures(8, 4)
    text = "\n".join(TrainingBatch().section([case]))
    row = "| minilm | train-x | 128 | cgroup v1, 768 MiB budget | b4 | b8 | 0.50x | "
    assert row + "b1 10.0 (430) · b2 20.0 (460) · b4 40.0 (520) |" in text


def test_a_training_try_fits_a_small_batch_and_is_killed_over_its_budget(micro_model_dir, tmp_path):
    from perfgate.engine.scenarios.train_batch import TrainFits
    from perfgate.subjects.catalogue import import_path
    from tests.capped import submit_in_cgroup

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": import_path("train-adamw"), "threads": 1, "seq_len": 16, "batch_size": 2,
        "eval_texts": ["The train was late.", "A cat sat on the mat."],
    }  # fmt: skip
    fits = submit_in_cgroup(tmp_path, TrainFits(), {**payload, "budget_bytes": 256 * MB})
    assert fits.outcome == Outcome.MEASURED, fits.detail
    assert 0 < fits.data["peak_bytes"] <= 256 * MB
    killed = submit_in_cgroup(tmp_path, TrainFits(), {**payload, "batch_size": 512, "budget_bytes": 4 * MB})
    assert killed.outcome == Outcome.OOM, (killed.outcome, killed.detail)


@pytest.mark.parametrize(("step", "limit", "largest"), [(1, 37, 37), (4, 37, 36), (4, 3, 0), (4, 8, 8)])
def test_an_accumulating_recipes_search_tries_whole_micro_batches_only(step, limit, largest):
    from perfgate.engine.scenarios.train_batch import search_in_steps

    asked: list[int] = []

    def fits(size: int) -> bool:
        asked.append(size)
        return size <= limit

    found, tries = search_in_steps(fits, step)
    assert found == largest
    assert all(size % step == 0 for size in asked)
    assert [size for size, _ in tries] == asked
