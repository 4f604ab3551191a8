"""Training techniques that must not change the numbers, checked on the loop the train-step scenario
runs (``training.StepRunner``): gradient accumulation gives the large batch's gradients, gradient
checkpointing the plain step's; and each optimizer keeps the state its rule predicts. Each check is
shown failing on a deliberately wrong input beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfgate.subjects.training import (
    Recipe,
    StepRunner,
    load_classifier,
    optimizer_state_bytes,
    predicted_state_bytes,
    training_batches,
)

SENTENCES = [
    "The train was late.", "A cat sat on the mat.", "Rain is expected tomorrow.", "He sold his car.",
    "The museum opens at nine.", "She plays the violin well.", "Prices rose again.", "We walked home.",
]  # fmt: skip
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}  # fp32 sums in another order: a few ulps on each gradient


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A one-layer BERT as the scenario trains it (two-label head, dropout off) and one batch of 8."""
    import transformers

    from tests.micro_model import micro_bert

    directory = micro_bert(tmp_path_factory.mktemp("models") / "micro-bert")
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    return directory, training_batches(tokenizer, SENTENCES, 8, 16, 1, "cpu")[0]


def runner(directory: Path, recipe: Recipe) -> StepRunner:
    return StepRunner(load_classifier(directory, "cpu"), recipe, "cpu")


def gradients(model):  # type: ignore[no-untyped-def]
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def gradients_close(a, b) -> bool:  # type: ignore[no-untyped-def]
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], **TOLERANCE) for k in a)


def test_accumulating_four_micro_batches_gives_the_large_batchs_gradients(micro):
    from perfgate.subjects.training import split_batch

    directory, batch = micro
    large = runner(directory, Recipe())
    large.backward(batch)
    accumulated = runner(directory, Recipe(gradient_accumulation_steps=4))
    accumulated.backward(batch)
    assert gradients_close(gradients(accumulated.model), gradients(large.model))
    # The classic mistake: each micro-batch's loss not divided by their count (4x the gradients).
    wrong = runner(directory, Recipe())
    for part in split_batch(batch, 4):
        wrong.model(**part).loss.backward()
    assert not gradients_close(gradients(wrong.model), gradients(large.model))


def test_gradient_checkpointing_recomputes_the_layers_and_changes_no_gradient(micro):
    directory, batch = micro
    calls: dict[str, int] = {}
    grads = {}
    for name, recipe in (("plain", Recipe()), ("checkpointed", Recipe(gradient_checkpointing=True))):
        run = runner(directory, recipe)
        attention = run.model.bert.encoder.layer[0].attention  # a checkpointed layer's inside runs again
        attention.register_forward_hook(lambda *args, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
        run.backward(batch)
        grads[name] = gradients(run.model)
    assert calls == {"plain": 1, "checkpointed": 2}, "checkpointing ran the layer again in backward"
    assert gradients_close(grads["checkpointed"], grads["plain"])
    # The comparison can fail: another batch's gradients are not these.
    other = runner(directory, Recipe())
    other.backward({k: v[:4] for k, v in batch.items()})
    assert not gradients_close(gradients(other.model), grads["plain"])


@pytest.mark.parametrize("optim", ["adamw_torch", "adafactor", "adamw_bnb_8bit"])
def test_each_optimizer_keeps_the_state_its_rule_predicts(micro, optim):
    if optim == "adamw_bnb_8bit":
        pytest.importorskip("bitsandbytes", reason="8-bit AdamW needs bitsandbytes: pip install bitsandbytes")
    directory, batch = micro
    run = runner(directory, Recipe(optim=optim))
    run.step(batch)
    shapes = [tuple(p.shape) for p in run.model.parameters() if p.requires_grad]
    assert optimizer_state_bytes(run.optimizer) == predicted_state_bytes(optim, shapes)


def test_the_state_prediction_fails_on_a_wrong_rule(micro):
    """AdamW predicted with one state per parameter instead of two: half the bytes, and the check says so."""
    directory, batch = micro
    run = runner(directory, Recipe())
    run.step(batch)
    shapes = [tuple(p.shape) for p in run.model.parameters()]
    assert optimizer_state_bytes(run.optimizer) != predicted_state_bytes("adamw_torch", shapes) // 2
    assert optimizer_state_bytes(run.optimizer) != predicted_state_bytes("adafactor", shapes)


def test_an_unknown_optimizer_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="optim='sgd' is not one of adamw_torch, adafactor, adamw_bnb_8bit"):
        predicted_state_bytes("sgd", [(2, 2)])
