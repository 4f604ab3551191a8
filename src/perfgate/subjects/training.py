"""Training steps as the field's ways to make training fit and go faster: what a step is, what each
optimizer keeps, and the gradients that must not change.

A plain PyTorch loop (``StepRunner``), not the transformers ``Trainer``: on a 22 M-parameter model the Trainer's own
per-step work (callbacks, logging, its data collator and sampler) is a visible share of a step and
would blur the differences measured here. The names follow the Trainer's ``TrainingArguments`` so a
result maps onto a Trainer setting: ``gradient_accumulation_steps``, ``gradient_checkpointing``,
``bf16``/``fp16`` (autocast), ``optim`` ("adamw_torch", "adafactor", "adamw_bnb_8bit"), ``torch_compile``
(the model compiled, the optimizer step left eager, as the Trainer does) and ``dataloader_num_workers``;
and the same optimizer classes the Trainer builds for those names.

Optimizer state is predicted from the model's parameters, never typed in: AdamW keeps two fp32 tensors
per parameter; Adafactor (no first moment, as the Trainer configures it) a row and a column statistic
per matrix and a full one per vector; 8-bit AdamW two uint8 tensors plus one fp32 scale per block of
256 values, for tensors of at least 4096 values (smaller ones keep fp32 states), and the two shared
256-entry quantization maps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import torch

__all__ = [
    "OPTIMIZERS",
    "Recipe",
    "SlowDataset",
    "StepRunner",
    "data_loader",
    "make_optimizer",
    "optimizer_state_bytes",
    "predicted_state_bytes",
    "prefetch_prediction",
    "samples_of",
]

OPTIMIZERS = ("adamw_torch", "adafactor", "adamw_bnb_8bit")
BNB_BLOCK = 256  # values per absmax scale in bitsandbytes' blockwise 8-bit states
BNB_MIN_8BIT_SIZE = 4096  # bitsandbytes keeps fp32 states for tensors smaller than this


@dataclass(frozen=True)
class Recipe:
    """One way to run a training step, in the Trainer's terms."""

    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    autocast: str | None = None  # "bf16" or "fp16" (with a gradient scaler)
    optim: str = "adamw_torch"
    torch_compile: bool = False
    dataloader_num_workers: int = 0

    def __post_init__(self) -> None:
        if self.optim not in OPTIMIZERS:
            raise ValueError(f"optim={self.optim!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.gradient_accumulation_steps < 1:
            raise ValueError(f"gradient_accumulation_steps={self.gradient_accumulation_steps} must be at least 1")
        if self.dataloader_num_workers < 0:
            raise ValueError(f"dataloader_num_workers={self.dataloader_num_workers} must be 0 or more")


def make_optimizer(name: str, parameters: Iterable[torch.nn.Parameter], lr: float = 5e-5) -> torch.optim.Optimizer:
    """The optimizer the Trainer builds for ``optim=name`` (its defaults, the learning rate given)."""
    import torch

    params = list(parameters)
    if name == "adamw_torch":
        return torch.optim.AdamW(params, lr=lr)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        adafactor: torch.optim.Optimizer = Adafactor(params, lr=lr, scale_parameter=False, relative_step=False)
        return adafactor  # the Trainer's settings for optim="adafactor"
    if name == "adamw_bnb_8bit":
        import bitsandbytes

        optimizer: torch.optim.Optimizer = bitsandbytes.optim.AdamW8bit(params, lr=lr)
        return optimizer
    raise ValueError(f"optim={name!r} is not one of {', '.join(OPTIMIZERS)}")


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the tensors the optimizer keeps, each storage counted once (shared maps are shared)."""
    import torch

    seen: set[int] = set()
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:  # step counters are 0-dim; a bias of one is not
                storage = value.untyped_storage()
                if storage.data_ptr() not in seen:
                    seen.add(storage.data_ptr())
                    total += storage.nbytes()
    return total


def predicted_state_bytes(name: str, shapes: Iterable[tuple[int, ...]]) -> int:
    """What ``name`` should keep for parameters of these shapes, from the rules in the module docstring."""
    shapes = list(shapes)
    if name == "adamw_torch":
        return sum(2 * 4 * math.prod(shape) for shape in shapes)
    if name == "adafactor":
        total = 0
        for shape in shapes:
            if len(shape) >= 2:  # factored: a statistic per row and one per column
                total += 4 * (math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1])
            else:
                total += 4 * math.prod(shape)
        return total
    if name == "adamw_bnb_8bit":
        total, any_8bit = 0, False
        for shape in shapes:
            count = math.prod(shape)
            if count < BNB_MIN_8BIT_SIZE:
                total += 2 * 4 * count
            else:
                any_8bit = True
                total += 2 * count + 2 * 4 * math.ceil(count / BNB_BLOCK)
        return total + (2 * 256 * 4 if any_8bit else 0)
    raise ValueError(f"optim={name!r} is not one of {', '.join(OPTIMIZERS)}")


SEED = 20261130


class StepRunner:
    """One model under one recipe: its optimizer, autocast and scaler; ``step`` runs one optimizer step
    on a batch (split into the recipe's micro-batches) and returns the batch's loss."""

    def __init__(self, model: Any, recipe: Recipe, device: str) -> None:
        import torch

        if recipe.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.model, self.recipe, self.device = model.train(), recipe, device
        self.forward = torch.compile(model) if recipe.torch_compile else model
        self.optimizer = make_optimizer(recipe.optim, model.parameters())
        self.scaler = torch.amp.GradScaler(device.partition(":")[0]) if recipe.autocast == "fp16" else None

    def backward(self, batch: Mapping[str, torch.Tensor]) -> float:
        """Gradients of one optimizer step's worth of samples, left on the parameters: the batch split into
        the recipe's micro-batches, each one's loss divided by their count (as the Trainer does with
        gradient_accumulation_steps) and backpropagated. Returns the batch's loss."""
        import contextlib

        import torch

        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.recipe.autocast or "")
        kind = self.device.partition(":")[0]
        autocast = torch.autocast(kind, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        micro_batches = split_batch(batch, self.recipe.gradient_accumulation_steps)
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in micro_batches:
            with autocast:
                loss = self.forward(**micro).loss / len(micro_batches)
            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += float(loss.detach())
        return total

    def step(self, batch: Mapping[str, torch.Tensor]) -> float:
        """One optimizer step on ``batch``; its loss."""
        loss = self.backward(batch)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return loss


def split_batch(batch: Mapping[str, torch.Tensor], parts: int) -> list[dict[str, torch.Tensor]]:
    """``parts`` equal micro-batches (the samples per optimizer step stay those of the batch)."""
    size = len(next(iter(batch.values())))
    if size % parts:
        raise ValueError(f"batch size {size} is not divisible by gradient_accumulation_steps={parts}")
    step = size // parts
    return [{k: v[i : i + step] for k, v in batch.items()} for i in range(0, size, step)]


def training_batches(
    tokenizer: Any, texts: list[str], batch_size: int, seq_len: int, count: int, device: str
) -> list[dict[str, torch.Tensor]]:
    """``count`` seeded batches of the texts, padded to ``seq_len`` (fixed shapes), with seeded labels."""
    import random

    import torch

    draw = random.Random(SEED)
    batches = []
    for _ in range(count):
        chosen = [texts[draw.randrange(len(texts))] for _ in range(batch_size)]
        encoded = tokenizer(chosen, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt")
        labels = torch.tensor([draw.randrange(2) for _ in range(batch_size)])
        batches.append({**{k: v.to(device) for k, v in encoded.items()}, "labels": labels.to(device)})
    return batches


class SlowDataset:
    """Samples whose every fetch waits ``seconds_per_item`` first: a read from disk or network, a decode
    elsewhere; time that holds no core of this machine, so loader workers can overlap it with the step.
    A map-style dataset (``__getitem__``/``__len__``) the DataLoader batches with its default collate."""

    def __init__(self, samples: list[dict[str, torch.Tensor]], seconds_per_item: float) -> None:
        self.samples, self.seconds_per_item = samples, seconds_per_item

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        time.sleep(self.seconds_per_item)
        return self.samples[index]


def samples_of(batches: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """The batches as single samples, in order: what a DataLoader with their batch size gives back."""
    return [{k: v[i] for k, v in batch.items()} for batch in batches for i in range(len(batch["labels"]))]


def data_loader(dataset: SlowDataset, batch_size: int, workers: int, pin_memory: bool = False) -> Any:
    """The Trainer's DataLoader settings that matter here: ``dataloader_num_workers`` workers, not
    persistent (the Trainer's default), torch's default prefetch of 2 batches per worker, pinned memory
    for a GPU. In order, not shuffled: both arms see the same batches, so their losses can be compared."""
    import torch

    return torch.utils.data.DataLoader(
        cast(Any, dataset), batch_size=batch_size, shuffle=False, num_workers=workers, pin_memory=pin_memory
    )


def prefetch_prediction(
    step_seconds: float, item_seconds: float, batch_size: int, steps: int, workers: int, startup_seconds: float = 0.0
) -> float:
    """Predicted speedup of an epoch of ``steps`` steps with ``workers`` loader workers over loading in the
    training process, from the step's compute time, the per-item cost and the workers' start-up. In the
    process, each step waits for its batch: ``steps * (step + batch_size * item)``. The DataLoader hands
    batch ``i`` to worker ``i % workers``, which loads its batches one after another once the workers
    are up, so batch ``i`` is ready at ``startup + (i // workers + 1) * batch_size * item``; a step
    starts when both its batch and the step before are done. Inter-process transfer is not in the
    prediction: what it costs shows as an efficiency (measured over predicted) under 1."""
    load = batch_size * item_seconds
    serial = steps * (step_seconds + load)
    if workers == 0:
        return 1.0
    clock = 0.0
    for index in range(steps):
        clock = max(clock, startup_seconds + (index // workers + 1) * load) + step_seconds
    return serial / clock


def load_classifier(location: Any, device: str) -> Any:
    """The model as a two-label sequence classifier in fp32 (a seeded head where it has none), the same
    weights on every call, dropout off: two arms' steps then differ only by what the recipe changes."""
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(location, num_labels=2)
    # Set before the first step: the model sets it on its first forward otherwise, and a compiled step
    # would then recompile on its second (a guard on the config), outside what the cold compile measures.
    config.problem_type = "single_label_classification"
    for name, value in list(vars(config).items()):  # attention dropout is a rate in the config, not a module
        if isinstance(value, float) and ("dropout" in name or name.endswith("pdrop")):
            setattr(config, name, 0.0)
    torch.manual_seed(SEED)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        location, config=config, dtype="float32", use_safetensors=True, ignore_mismatched_sizes=True
    )
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model.to(device)
