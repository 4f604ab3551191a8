"""The padding caveat as a measured case: the same sentences padded to a fixed length against the
baseline's dynamic shapes (each batch padded only to its longest sentence, batch 1 not at all).

The fp32 module serves both arms; only the shape differs, so the primary output (mean-pooled over real
tokens, or the logits after the last real token) must agree and the speed ratio is the padding's cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from perfgate.subjects.model import LoadedModel, module_bytes
from perfgate.subjects.technique import Technique, Variant

if TYPE_CHECKING:
    import torch


class _FixedLength(Technique):
    length: ClassVar[int]
    devices = frozenset({"cpu", "cuda"})
    tasks = frozenset({"feature-extraction", "text-classification", "text-generation"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        module = model.module
        pad_id = model.tokenizer.pad_token_id

        def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            padded = {
                name: _pad(tensor, self.length, pad_id if name == "input_ids" else 0) for name, tensor in inputs.items()
            }
            with torch.inference_mode():
                return model.primary_output(module(**padded), padded)

        return Variant(
            self.name, run, memory_bytes=module_bytes(module), independent_of_source=False,
            details={"padded_to": self.length, "pad_token_id": pad_id},
        )  # fmt: skip


def _pad(tensor: torch.Tensor, length: int, value: int) -> torch.Tensor:
    import torch

    missing = length - tensor.shape[1]
    if missing <= 0:
        return tensor
    fill = torch.full((tensor.shape[0], missing), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, fill], dim=1)  # right padding, as the tokenizer pads


class PadTo128(_FixedLength):
    name = "pad-to-128"
    summary = "every batch padded to 128 tokens (fixed shapes) instead of its longest sentence"
    length = 128
