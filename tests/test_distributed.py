"""The sharding predictions against the engines themselves: two gloo ranks build ZeroRedundancyOptimizer
and FSDP2 on the micro model, and each rank's partition and shards are compared with the prediction."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from perfgate.subjects.distributed.predictions import (
    fsdp_shard_elements,
    predicted_communication_bytes,
    zero1_partition,
)
from perfgate.subjects.training import predicted_state_bytes

WORLD = 2


def test_zero1_gives_the_largest_parameter_first_to_the_emptiest_rank():
    assert zero1_partition([10, 300, 20, 300, 5], 2) == [[1, 2], [3, 0, 4]]  # 300 | 300, 20 | 10, then 5 to 310
    assert zero1_partition([7, 7, 7], 3) == [[0], [1], [2]]
    assert zero1_partition([], 2) == [[], []]
    with pytest.raises(ValueError, match="at least one rank"):
        zero1_partition([1], 0)


def test_fsdp_shards_split_dim_0_with_the_last_chunk_short():
    assert fsdp_shard_elements([(5, 3)], 2) == [9, 9]  # ceil(5/2) = 3 rows each, padded
    assert fsdp_shard_elements([(5, 3)], 2, padded=False) == [9, 6]
    assert fsdp_shard_elements([(1, 4)], 4, padded=False) == [4, 0, 0, 0]
    assert fsdp_shard_elements([(8,), ()], 2) == [5, 5]  # a 0-dim tensor is one row


def test_communication_follows_the_engine_not_the_textbook():
    assert predicted_communication_bytes("ddp", 100) == 200
    assert predicted_communication_bytes("zero1", 100) == 300  # DDP's all-reduce, then a broadcast
    assert predicted_communication_bytes("fsdp-full-shard", 100) == 300
    assert predicted_communication_bytes("ddp-grad-copy", 100) == 200  # the same all-reduce, from its own buckets
    with pytest.raises(ValueError, match="one of ddp, ddp-grad-copy, zero1"):
        predicted_communication_bytes("zero2", 100)


def _rank(rank: int, store: str, model_dir: str, results: dict) -> None:
    import torch.distributed as dist
    import transformers
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        model = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir)
        parameters = list(model.parameters())
        optimizer = ZeroRedundancyOptimizer(parameters, optimizer_class=torch.optim.AdamW, lr=1e-3)
        owned = [i for i, p in enumerate(parameters) if any(p is q for q in optimizer.optim.param_groups[0]["params"])]
        batch = {"input_ids": torch.randint(1, 100, (2, 8)), "labels": torch.tensor([0, 1])}
        model(**batch).loss.backward()
        optimizer.step()
        state = sum(v.numel() * v.element_size() for s in optimizer.optim.state.values() for v in s.values()
                    if torch.is_tensor(v) and v.numel() > 1)  # fmt: skip
        sharded = transformers.AutoModelForSequenceClassification.from_pretrained(model_dir)
        for layer in sharded.bert.encoder.layer:
            fully_shard(layer)
        fully_shard(sharded)
        local = sum(p.to_local().numel() for p in sharded.parameters())
        results[rank] = {"owned": owned, "state_bytes": state, "fsdp_local": local}
    finally:
        dist.destroy_process_group()


def test_predictions_match_zero_redundancy_optimizer_and_fsdp2_rank_by_rank(micro_model_dir: Path, tmp_path):
    import torch.multiprocessing as mp
    import transformers

    manager = mp.Manager()
    results = manager.dict()
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(micro_model_dir), results), nprocs=WORLD, join=True)
    shapes = [
        tuple(p.shape)
        for p in transformers.AutoModelForSequenceClassification.from_pretrained(micro_model_dir).parameters()
    ]
    predicted = zero1_partition([math.prod(s) for s in shapes], WORLD)
    local = fsdp_shard_elements(shapes, WORLD, padded=False)
    for rank in range(WORLD):
        assert sorted(results[rank]["owned"]) == sorted(predicted[rank])
        assert results[rank]["state_bytes"] == predicted_state_bytes(
            "adamw_torch", [shapes[i] for i in predicted[rank]]
        )
        assert results[rank]["fsdp_local"] == local[rank]


def test_optimizer_state_counts_a_one_element_shard_and_leaves_out_step_counters():
    # A two-label classifier bias on two ranks leaves each rank one element of it: state, not a counter.
    import torch

    from perfgate.subjects.distributed.instruments import optimizer_state_local_bytes
    from perfgate.subjects.training import optimizer_state_bytes

    model = torch.nn.Linear(4, 1)  # a weight of 4 and a bias of 1 element
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    assert all(state["step"].dim() == 0 for state in optimizer.state.values())  # AdamW's counters are 0-dim
    expected = 2 * (4 + 1) * 4  # exp_avg and exp_avg_sq of every element, fp32
    assert optimizer_state_local_bytes(optimizer) == expected
    assert optimizer_state_bytes(optimizer) == expected


def test_every_distributed_technique_names_a_recipe_the_engines_and_predictions_know():
    from perfgate.subjects.distributed.predictions import COMMUNICATION_FACTORS, RECIPES
    from perfgate.subjects.techniques import training

    # the catalogue's own classes: the registry may also name other tests' planted techniques
    classes = [c for c in vars(training).values() if isinstance(c, type)]
    recipes = [c for c in classes if issubclass(c, training.DistributedRecipe) and "sharding" in vars(c)]
    assert {recipe.sharding for recipe in recipes} == set(RECIPES) == set(COMMUNICATION_FACTORS)
