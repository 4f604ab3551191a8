"""A sharded optimizer's step is the unsharded step: two gloo ranks run ZeroRedundancyOptimizer (AdamW, each
rank stepping only the parameters it owns, then broadcasting them) on the same gradients as one process
running AdamW, and end with the same parameters within fp32 rounding. A rank that skips its shard's step
is caught: the check can fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cpu

WORLD = 2
STEPS = 3


def _model() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8), torch.nn.Linear(8, 4))


def _gradients(step: int, model: torch.nn.Module) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + step)
    return [torch.randn(p.shape, generator=generator) for p in model.parameters()]


def _unsharded() -> list[torch.Tensor]:
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for step in range(STEPS):
        for parameter, gradient in zip(model.parameters(), _gradients(step, model), strict=True):
            parameter.grad = gradient
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _rank(rank: int, store: str, skipping_rank: int | None, results: dict) -> None:
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=WORLD)
    try:
        model = _model()
        optimizer = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=torch.optim.AdamW, lr=1e-2)
        if rank == skipping_rank:
            optimizer.optim.step = lambda *args, **kwargs: None  # planted: this rank never steps its shard
        for step in range(STEPS):
            for parameter, gradient in zip(model.parameters(), _gradients(step, model), strict=True):
                parameter.grad = gradient
            optimizer.step()
        owned = {id(p) for p in optimizer.optim.param_groups[0]["params"]}
        results[rank] = {
            "parameters": [p.detach().clone() for p in model.parameters()],
            "owned": [i for i, p in enumerate(model.parameters()) if id(p) in owned],
        }
    finally:
        dist.destroy_process_group()


def sharded(tmp_path: Path, skipping_rank: int | None = None) -> dict:
    import torch.multiprocessing as mp

    tmp_path.mkdir(parents=True, exist_ok=True)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank, args=(str(tmp_path / "store"), skipping_rank, results), nprocs=WORLD, join=True)
        return dict(results)


def mismatched(ranks: dict, reference: list[torch.Tensor]) -> list[tuple[int, int]]:
    """(rank, parameter index) where a rank's parameters after the steps differ from the unsharded ones."""
    return [
        (rank, index)
        for rank, figures in ranks.items()
        for index, (got, want) in enumerate(zip(figures["parameters"], reference, strict=True))
        if not torch.allclose(got, want, rtol=1e-6, atol=1e-7)
    ]


def test_zero1_steps_like_one_process_and_a_rank_skipping_its_shard_is_caught(tmp_path):
    reference = _unsharded()
    ranks = sharded(tmp_path / "fair")
    assert sorted(i for figures in ranks.values() for i in figures["owned"]) == list(range(len(reference)))
    assert mismatched(ranks, reference) == []
    planted = sharded(tmp_path / "planted", skipping_rank=1)
    wrong = mismatched(planted, reference)
    skipped = set(planted[1]["owned"])
    assert wrong, "a rank that skips its shard must show"
    assert {index for _, index in wrong} == skipped  # exactly its shard, on every rank (broadcast stale)
