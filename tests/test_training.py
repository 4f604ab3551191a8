"""The training loop's pieces on a micro model, the train-step scenario's figures, and its metric."""

from __future__ import annotations

import pytest

from perfgate.case import CaseResult
from perfgate.metrics.training import Training
from perfgate.outcome import Outcome
from perfgate.scenarios.train_step import memory_figures, recipe_of
from perfgate.spec import CaseSpec
from perfgate.thresholds import Thresholds
from perfgate.training import Recipe, split_batch

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
    from perfgate.training import StepRunner, load_classifier, training_batches

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
    from perfgate.technique import import_path

    assert recipe_of(import_path("train-adafactor")) == Recipe(optim="adafactor")
    with pytest.raises(TypeError, match="fp32-eager is not a training recipe"):
        recipe_of(import_path("fp32-eager"))


def test_a_training_recipe_has_no_inference_variant(micro_model_dir, tmp_path):
    from perfgate.model import load_model
    from perfgate.techniques.training import GradientCheckpointing

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
