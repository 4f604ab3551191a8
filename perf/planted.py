"""A planted technique for the memory check: fp32 eager that keeps a second fp32 copy of every weight
alive. Its serving memory must exceed fp32's by about the weights' size; a measure that missed it (or
counted the copy for both arms) would be useless for provisioning."""

from __future__ import annotations

from pathlib import Path

from perfgate import LoadedModel, Technique, Variant
from perfgate.subjects.techniques.loading import OffloadToDisk
from perfgate.subjects.techniques.onnxruntime import OptimizedO1
from perfgate.subjects.techniques.training import DistributedRecipe


class LeaksAnFp32Copy(Technique):
    name = "planted-fp32-copy-leak"
    derive_thresholds = False  # a planted fault: what it measures is never its bound
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


class BendsOutputsToHalfCosine(Technique):
    """fp32 eager whose every output row is turned to a cosine of exactly 0.5 with fp32's, its norm kept:
    what broken int8 scales look like. A fidelity floor must fail it on every hardware class."""

    name = "planted-half-cosine"
    derive_thresholds = False  # a planted fault: what it measures is never its bound
    summary = "fp32 eager, each output row turned 60 degrees away from fp32's (cosine 0.5)"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import torch

        def run(inputs: dict[str, torch.Tensor]) -> torch.Tensor:
            out = model.run(inputs)
            rows = out.reshape(out.shape[0], -1).float()
            unit = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-30)
            other = torch.roll(rows, shifts=1, dims=1)  # deterministic, and not parallel to the row
            other = other - (other * unit).sum(dim=1, keepdim=True) * unit
            other = other / other.norm(dim=1, keepdim=True).clamp_min(1e-30)
            bent = (0.5 * unit + 0.75**0.5 * other) * rows.norm(dim=1, keepdim=True)
            return bent.reshape(out.shape).to(out.dtype)

        return Variant(self.name, run, memory_bytes=model.parameter_bytes(), independent_of_source=False)


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
    summary = "device_map='auto' offload with max_memory cpu=64 MiB, below GPT-2's 147 MiB embedding"
    max_memory_cpu = 64 * 2**20


class OffloadToAnUnwritableFolder(OffloadToDisk):
    name = "planted-offload-unwritable-folder"
    summary = "device_map='auto' offload into a folder that cannot be written (/proc)"

    def folder(self, workdir: Path) -> Path:
        return Path("/proc/perfgate-offload")


class KeepsThreeOfSixLayers(Technique):
    """A copy of the fp32 model with only encoder layers 1, 3 and 5 (``fixtures.models.keep_layers``): about
    twice as fast and, on MiniLM, 0.45 on the hard retrieval set against fp32's 0.80. Output cosine alone
    does not name what is lost; the task check must fail it."""

    name = "planted-three-of-six-layers"
    derive_thresholds = False  # a planted fault: what it measures is never its bound
    summary = "fp32 copy keeping encoder layers 1, 3 and 5 of six (a cut without distillation)"
    devices = frozenset({"cpu", "cuda"})

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import copy
        import time

        from fixtures.models import keep_layers
        from perfgate.subjects.technique import module_variant

        started = time.perf_counter()
        module = copy.deepcopy(model.module)
        base = module.base_model
        if len(base.encoder.layer) != 6:
            raise ValueError(f"{model.name} has {len(base.encoder.layer)} encoder layers; this cut needs six")
        keep_layers(base)
        return module_variant(self.name, model, module, started, {"layers_kept": [1, 3, 5]})


class Zero1KeepingTheWholeState(DistributedRecipe):
    """Promises ZeRO-1 (its predictions are ``zero1``'s) and runs plain DDP with AdamW on every rank, so
    each keeps the whole optimizer state: the held bytes and the saving against DDP must both fail."""

    name = "planted-zero1-whole-state"
    derive_thresholds = False  # a planted fault: what it measures is never its bound
    summary = "ZeRO-1 promised, plain DDP run: every rank keeps AdamW's whole state"
    sharding = "zero1"
    engine = "ddp"


class OnnxRuntimeUnoptimized(OptimizedO1):
    """ONNX Runtime on the basic graph (O1) with the session's own graph optimizations off: none of the
    fused nodes O2 builds (attention, skip layer normalization, bias GELU) is there, their parts are —
    what ``perfgate explain --baseline onnxruntime-o2`` must name, from ONNX Runtime's own profiler."""

    name = "planted-onnxruntime-unoptimized"
    summary = "ONNX Runtime on the unfused graph, the session optimizing nothing"
    session_optimizations = False
