"""Ways to load a checkpoint: each a technique whose ``load`` is what the load scenario times and whose
variant serves the model as loaded (so an A/B case times an offloaded model against the in-memory one).

Every strategy reads the checkpoint forms the fixture writes side by side (fixtures/models.py,
``checkpoint_forms``): one safetensors file at the top, ~100 MB shards with an index in ``sharded/``,
and a ``.bin`` in ``bin/``, read with ``torch.load(weights_only=True)`` by transformers, so no pickled
code runs. Offloading strategies write under the technique's work directory, emptied before each load.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

from perfgate.model import TASKS, LoadedModel
from perfgate.technique import Requirement, Technique, Variant, module_variant

SHARDED, PICKLED = "sharded", "bin"
OFFLOAD_CPU_BYTES = 200 * 2**20  # what the offload strategies allow in RAM: below a 0.5 GB model


class LoadStrategy(Technique):
    """``load`` returns the module and what it placed where; ``apply`` serves that module."""

    tasks = frozenset({"feature-extraction", "text-classification", "text-generation"})
    form: ClassVar[str] = ""  # the checkpoint form it reads: "" (one safetensors file), "sharded", "bin"

    def checkpoint(self, location: Path) -> Path:
        path = location / self.form if self.form else location
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{self.name} reads the {self.form or 'single-file'} checkpoint at {path}, which is missing: "
                f"the load fixtures write it (fixtures/models.py checkpoint_forms); rebuild the model's cache entry"
            )
        return path

    def load(self, task: str, location: Path, workdir: Path) -> tuple[Any, dict[str, Any]]:
        from perfgate.model import load_module

        module = load_module(task, self.checkpoint(location), "cpu", **self.options(workdir))
        return module, {}

    def options(self, workdir: Path) -> dict[str, Any]:
        return {}

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        start = time.perf_counter()
        module, details = self.load(model.task, Path(model.location), workdir)
        dtype = next(iter(module.parameters())).dtype
        return module_variant(self.name, model, module, start, {**details, **placement(module)}, input_dtype=dtype)


class SingleFile(LoadStrategy):
    name = "load-safetensors"
    summary = "from_pretrained of one safetensors file (memory-mapped), fp32"


class Sharded(LoadStrategy):
    name = "load-sharded"
    summary = "from_pretrained of ~100 MB safetensors shards with an index, fp32"
    form = SHARDED


class Pickled(LoadStrategy):
    name = "load-bin"
    summary = "from_pretrained of a pytorch_model.bin, read with torch.load(weights_only=True)"
    form = PICKLED

    def load(self, task: str, location: Path, workdir: Path) -> tuple[Any, dict[str, Any]]:
        import transformers

        auto = getattr(transformers, TASKS[task])
        module = auto.from_pretrained(self.checkpoint(location), use_safetensors=False, dtype="float32")
        return module.eval(), {"weights_only": True}


class ConvertToBf16(LoadStrategy):
    name = "load-bf16"
    summary = "from_pretrained of the fp32 file converting to bf16 while loading (dtype=bfloat16)"

    def options(self, workdir: Path) -> dict[str, Any]:
        return {"dtype": "bfloat16"}


class _Offload(LoadStrategy):
    requires = (Requirement("accelerate", "pip install accelerate"),)

    def offload_folder(self, workdir: Path) -> Path:
        folder = workdir / "offload" / self.name
        shutil.rmtree(folder, ignore_errors=True)  # a folder of an earlier load would be read, not written
        folder.mkdir(parents=True)
        return folder


class OffloadToDisk(_Offload):
    name = "load-offload"
    summary = 'device_map="auto" with max_memory {"cpu": 200MB}: the rest offloaded to a disk folder'

    def options(self, workdir: Path) -> dict[str, Any]:
        return {"device_map": "auto", "max_memory": {"cpu": OFFLOAD_CPU_BYTES},
                "offload_folder": str(self.offload_folder(workdir))}  # fmt: skip


class EmptyThenDispatch(_Offload):
    name = "load-dispatch"
    summary = "init_empty_weights, then load_checkpoint_and_dispatch with no_split_module_classes (200 MB in RAM)"

    def load(self, task: str, location: Path, workdir: Path) -> tuple[Any, dict[str, Any]]:
        import accelerate
        import transformers

        path = self.checkpoint(location)
        config = transformers.AutoConfig.from_pretrained(path)
        with accelerate.init_empty_weights():
            empty = getattr(transformers, TASKS[task]).from_config(config)
        empty.tie_weights()
        no_split = list(getattr(empty, "_no_split_modules", None) or [])
        module = accelerate.load_checkpoint_and_dispatch(
            empty, str(path), device_map="auto", max_memory={"cpu": OFFLOAD_CPU_BYTES},
            offload_folder=str(self.offload_folder(workdir)), no_split_module_classes=no_split, dtype="float32",
        )  # fmt: skip
        return module.eval(), {"no_split_module_classes": no_split}


class RandomInitThenStateDict(LoadStrategy):
    """What the others avoid: every weight initialised at random, then the checkpoint read in full and
    copied over. The reference the load checks must fail on."""

    name = "load-state-dict"
    summary = "anti-pattern: from_config (random init), then the whole file read and load_state_dict"

    def load(self, task: str, location: Path, workdir: Path) -> tuple[Any, dict[str, Any]]:
        import transformers
        from safetensors.torch import load_file

        path = self.checkpoint(location)
        config = transformers.AutoConfig.from_pretrained(path)
        module = getattr(transformers, TASKS[task]).from_config(config)
        state = load_file(path / "model.safetensors")
        missing, unexpected = module.load_state_dict(state, strict=False)
        del state
        return module.eval(), {"missing_keys": len(missing), "unexpected_keys": len(unexpected)}


def placement(module: Any) -> dict[str, Any]:
    """Bytes of parameters and buffers per device ("cpu", "cuda:0", "disk", "meta") from the module's
    device map where accelerate set one, else from where each tensor is."""
    device_map: dict[str, Any] = dict(getattr(module, "hf_device_map", None) or {})
    totals: dict[str, int] = {}
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        where = _mapped_device(device_map, name) if device_map else str(tensor.device)
        totals[where] = totals.get(where, 0) + tensor.numel() * tensor.element_size()
    return {"placement_bytes": totals, "device_map_entries": len(device_map)}


def _mapped_device(device_map: dict[str, Any], name: str) -> str:
    """The device the map gives ``name`` (the longest module prefix that names it)."""
    best, where = -1, "cpu"
    for prefix, device in device_map.items():
        if (prefix in ("", name) or name.startswith(prefix + ".")) and len(prefix) > best:
            best, where = len(prefix), str(device) if not isinstance(device, int) else f"cuda:{device}"
    return where
