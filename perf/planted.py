"""A planted technique for the memory check: fp32 eager that keeps a second fp32 copy of every weight
alive. Its serving memory must exceed fp32's by about the weights' size; a measure that missed it (or
counted the copy for both arms) would be useless for provisioning."""

from __future__ import annotations

from pathlib import Path

from perfgate import LoadedModel, Technique, Variant
from perfgate.techniques.loading import OffloadToDisk


class LeaksAnFp32Copy(Technique):
    name = "planted-fp32-copy-leak"
    summary = "fp32 eager, plus a clone of every parameter kept alive (anonymous memory)"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        with torch.no_grad():
            copies = [parameter.detach().clone() for parameter in model.module.parameters()]
        copy_bytes = sum(t.numel() * t.element_size() for t in copies)

        def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            assert copies  # the closure holds the copies for the variant's lifetime
            return model.run(inputs)

        return Variant(
            self.name,
            run,
            memory_bytes=model.parameter_bytes() + copy_bytes,
            independent_of_source=False,
            details={"leaked_bytes": copy_bytes},
        )


class TriggersADeviceSideAssert(Technique):
    """fp32 eager whose forward indexes out of bounds on the GPU: a device-side assert, after which
    every later CUDA call in that process fails. The next case must run in another worker."""

    name = "planted-cuda-device-assert"
    summary = "fp32 eager, then an out-of-bounds index on the GPU (device-side assert)"
    devices = frozenset({"cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            table = torch.zeros(4, device=model.device)
            table[torch.tensor([1 << 20], device=model.device)].sum().item()  # synchronizes: the assert fires
            return model.run(inputs)

        return Variant(self.name, run, memory_bytes=model.parameter_bytes(), independent_of_source=False)


class OffloadBelowTheLargestLayer(OffloadToDisk):
    """Disk offload with a RAM budget below the checkpoint's largest layer: a setting that cannot work."""

    name = "planted-offload-below-largest-layer"
    summary = "device_map='auto' offload with max_memory cpu=64 MB, below GPT-2's 147 MB embedding"
    max_memory_cpu = 64 * 2**20


class OffloadToAnUnwritableFolder(OffloadToDisk):
    name = "planted-offload-unwritable-folder"
    summary = "device_map='auto' offload into a folder that cannot be written (/proc)"

    def folder(self, workdir: Path) -> Path:
        return Path("/proc/perfgate-offload")
