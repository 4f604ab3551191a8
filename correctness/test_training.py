"""Training techniques that must not change the numbers: gradient accumulation gives the large batch's
gradients, gradient checkpointing the plain step's; and each optimizer keeps the state its rule predicts.
Each check is shown failing on a deliberately wrong input beside it."""

from __future__ import annotations

import pytest

from perfgate.training import accumulated_gradients, make_optimizer, optimizer_state_bytes, predicted_state_bytes

SENTENCES = [
    "The train was late.", "A cat sat on the mat.", "Rain is expected tomorrow.", "He sold his car.",
    "The museum opens at nine.", "She plays the violin well.", "Prices rose again.", "We walked home.",
]  # fmt: skip
LABELS = [0, 1, 2, 0, 1, 2, 0, 1]
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}  # fp32 sums in another order: a few ulps on each gradient


@pytest.fixture(scope="module")
def micro(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A one-layer BERT classifier without dropout (a training step is then deterministic) and batches."""
    import transformers

    from tests.micro_model import micro_bert

    directory = micro_bert(tmp_path_factory.mktemp("models") / "micro-bert")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        directory, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    return model.train(), tokenizer


def batch(tokenizer, start: int, stop: int):  # type: ignore[no-untyped-def]
    import torch

    encoded = tokenizer(SENTENCES[start:stop], padding=True, return_tensors="pt")
    return {**encoded, "labels": torch.tensor(LABELS[start:stop])}


def loss_of(model, inputs):  # type: ignore[no-untyped-def]
    return model(**inputs).loss


def gradients_close(a, b) -> bool:  # type: ignore[no-untyped-def]
    import torch

    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], **TOLERANCE) for k in a)


def test_accumulating_four_micro_batches_gives_the_large_batchs_gradients(micro):
    model, tokenizer = micro
    large = accumulated_gradients(model, loss_of, [batch(tokenizer, 0, 8)])
    micro_batches = [batch(tokenizer, i, i + 2) for i in range(0, 8, 2)]
    assert gradients_close(accumulated_gradients(model, loss_of, micro_batches), large)
    # The classic mistake: each micro-batch's loss not divided by their count (4x the gradients).
    assert not gradients_close(accumulated_gradients(model, loss_of, micro_batches, divide=False), large)


def test_gradient_checkpointing_recomputes_the_layers_and_changes_no_gradient(micro):
    model, tokenizer = micro
    inputs = batch(tokenizer, 0, 8)
    attention = model.bert.encoder.layer[0].attention  # the checkpointed layer's inside runs again in backward
    calls = []
    handle = attention.register_forward_hook(lambda *args: calls.append(1))
    try:
        plain = accumulated_gradients(model, loss_of, [inputs])
        plain_calls = len(calls)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        calls.clear()
        checkpointed = accumulated_gradients(model, loss_of, [inputs])
        checkpointed_calls = len(calls)
    finally:
        model.gradient_checkpointing_disable()
        handle.remove()
    assert (plain_calls, checkpointed_calls) == (1, 2), "checkpointing ran the layer again in backward"
    assert gradients_close(checkpointed, plain)
    # The comparison can fail: another batch's gradients are not these.
    assert not gradients_close(accumulated_gradients(model, loss_of, [batch(tokenizer, 0, 4)]), plain)


@pytest.mark.parametrize("optim", ["adamw_torch", "adafactor", "adamw_bnb_8bit"])
def test_each_optimizer_keeps_the_state_its_rule_predicts(micro, optim):
    if optim == "adamw_bnb_8bit":
        pytest.importorskip("bitsandbytes", reason="8-bit AdamW needs bitsandbytes: pip install bitsandbytes")
    model, tokenizer = micro
    optimizer = make_optimizer(optim, model.parameters())
    accumulated_gradients(model, loss_of, [batch(tokenizer, 0, 8)])
    optimizer.step()
    shapes = [tuple(p.shape) for p in model.parameters() if p.requires_grad]
    assert optimizer_state_bytes(optimizer) == predicted_state_bytes(optim, shapes)


def test_the_state_prediction_fails_on_a_wrong_rule(micro):
    """AdamW predicted with one state per parameter instead of two: half the bytes, and the check says so."""
    model, tokenizer = micro
    optimizer = make_optimizer("adamw_torch", model.parameters())
    accumulated_gradients(model, loss_of, [batch(tokenizer, 0, 8)])
    optimizer.step()
    shapes = [tuple(p.shape) for p in model.parameters()]
    one_state = predicted_state_bytes("adamw_torch", shapes) // 2
    assert optimizer_state_bytes(optimizer) != one_state
    assert optimizer_state_bytes(optimizer) != predicted_state_bytes("adafactor", shapes)


def test_an_unknown_optimizer_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="optim='sgd' is not one of adamw_torch, adafactor, adamw_bnb_8bit"):
        predicted_state_bytes("sgd", [(2, 2)])
