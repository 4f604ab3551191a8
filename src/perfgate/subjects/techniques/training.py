"""Training recipes: each a technique whose ``recipe`` the train-step scenario runs against plain fp32
AdamW (``train-adamw``) on the same model and data. They have no inference variant: ``apply`` refuses,
naming the scenario that measures them. See ``perfgate/training.py`` for the loop and why it is not the
transformers Trainer."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from perfgate.subjects.model import LoadedModel
from perfgate.subjects.technique import Requirement, Technique, Variant
from perfgate.subjects.training import Recipe

TRAINING_BASELINE = "train-adamw"


class TrainingRecipe(Technique):
    recipe: ClassVar[Recipe]
    tasks = frozenset({"feature-extraction", "text-classification"})  # trained as a sequence classifier
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        raise TypeError(f"{self.name} is a training recipe: measure it with scenario='train-step', not as an "
                        "inference variant")  # fmt: skip


class PlainAdamW(TrainingRecipe):
    name = TRAINING_BASELINE
    summary = "fp32 training step with torch AdamW: the reference every training recipe is measured against"
    recipe = Recipe()


class GradientAccumulation(TrainingRecipe):
    name = "train-grad-accumulation-4"
    summary = "the same samples per optimizer step in 4 micro-batches (gradient_accumulation_steps=4)"
    recipe = Recipe(gradient_accumulation_steps=4)


class GradientCheckpointing(TrainingRecipe):
    name = "train-grad-checkpointing"
    summary = "activations recomputed in backward instead of kept (gradient_checkpointing=True)"
    recipe = Recipe(gradient_checkpointing=True)


class Bf16Autocast(TrainingRecipe):
    name = "train-bf16-autocast"
    summary = "forward and backward under bf16 autocast, fp32 weights and optimizer (bf16=True)"
    recipe = Recipe(autocast="bf16")
    native_math = "bf16"


class Fp16Autocast(TrainingRecipe):
    name = "train-fp16-autocast"
    summary = "fp16 autocast with a gradient scaler (fp16=True); CUDA only"
    recipe = Recipe(autocast="fp16")
    devices = frozenset({"cuda"})
    native_math = "fp16"


class AdafactorOptimizer(TrainingRecipe):
    name = "train-adafactor"
    summary = "Adafactor (optim='adafactor'): factored second moments, no first moment"
    recipe = Recipe(optim="adafactor")


class AdamW8bit(TrainingRecipe):
    name = "train-adamw-8bit"
    summary = "bitsandbytes AdamW8bit (optim='adamw_bnb_8bit'): blockwise 8-bit optimizer states"
    recipe = Recipe(optim="adamw_bnb_8bit")
    requires = (Requirement("bitsandbytes", "pip install bitsandbytes"),)


class CompiledStep(TrainingRecipe):
    name = "train-torch-compile"
    summary = "model compiled by torch.compile (inductor), forward and backward; optimizer eager (torch_compile=True)"
    recipe = Recipe(torch_compile=True)
    fresh_worker = True  # compiled graphs and the inductor cache are process-wide

    def unavailable_reason(self, task: str, device: str) -> str | None:
        from perfgate.subjects.techniques.compile import missing_compiler

        return missing_compiler(self.name, device) or super().unavailable_reason(task, device)


class LoaderWorkers(TrainingRecipe):
    name = "train-dataloader-workers-2"
    summary = "batches loaded by 2 DataLoader worker processes, overlapping the step (dataloader_num_workers=2)"
    recipe = Recipe(dataloader_num_workers=2)


class DistributedRecipe(TrainingRecipe):
    """Training across ``world`` processes through torch.distributed (``scenarios/train_distributed``),
    against fp32 AdamW in one process at the same global batch. CPU ranks on ``gloo``; NCCL with a GPU per
    rank is not built here (the lent GPU machine has one GPU)."""

    sharding: ClassVar[str]
    world: ClassVar[int] = 2
    engine: ClassVar[str | None] = None  # what runs, where not ``sharding`` (a planted recipe's false promise)
    fault: ClassVar[dict[str, object] | None] = None  # a planted dead or silent rank (``distributed.rank``)
    recipe = Recipe()
    devices = frozenset({"cpu"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        raise TypeError(f"{self.name} trains across processes: measure it with scenario='train-distributed'")


class DataParallel(DistributedRecipe):
    name = "train-ddp"
    summary = "DistributedDataParallel over 2 ranks (gradients as bucket views): every rank holds everything"
    sharding = "ddp"


class DataParallelGradientCopy(DistributedRecipe):
    name = "train-ddp-grad-copy"
    summary = "DistributedDataParallel at torch's default: all-reduce buckets beside the gradients (a copy of them)"
    sharding = "ddp-grad-copy"


class Zero1(DistributedRecipe):
    name = "train-zero1"
    summary = "DDP with ZeroRedundancyOptimizer over 2 ranks: optimizer state sharded (ZeRO stage 1)"
    sharding = "zero1"


class FsdpShardGradOp(DistributedRecipe):
    name = "train-fsdp-shard-grad-op"
    summary = "FSDP2 fully_shard(reshard_after_forward=False) over 2 ranks: state and gradients sharded (ZeRO-2-like)"
    sharding = "fsdp-shard-grad-op"


class FsdpFullShard(DistributedRecipe):
    name = "train-fsdp-full-shard"
    summary = "FSDP2 fully_shard over 2 ranks: parameters, gradients and state sharded (ZeRO-3-like)"
    sharding = "fsdp-full-shard"


class FsdpMixedPrecision(DistributedRecipe):
    name = "train-fsdp-mixed-precision"
    summary = "FSDP2 full shard with MixedPrecisionPolicy: bf16 parameters for compute and all-gathers, fp32 reduction"
    sharding = "fsdp-mixed-precision"


def distributed_recipe(technique: str) -> DistributedRecipe:
    """The technique named, refused unless it trains across processes."""
    from perfgate.subjects.catalogue import get_technique

    found = get_technique(technique)
    if not isinstance(found, DistributedRecipe):
        raise TypeError(f"{technique} is not a distributed training recipe (train-ddp, train-zero1, "
                        "train-fsdp-*): the train-distributed scenario measures those")  # fmt: skip
    return found
