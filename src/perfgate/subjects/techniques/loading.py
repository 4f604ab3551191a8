"""Ways to load a checkpoint: each a technique whose ``load`` is what the load scenario times and whose
variant serves the model as loaded (so an A/B case times an offloaded model against the in-memory one).

Every strategy reads the checkpoint forms the fixture writes side by side (fixtures/models.py,
``checkpoint_forms``): one safetensors file at the top, ~100 MiB shards with an index in ``sharded/``,
and a ``.bin`` in ``bin/``, read with ``torch.load(weights_only=True)`` by transformers, so no pickled
code runs. Offloading strategies write under the technique's work directory, emptied before each load.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from perfgate.errors import CheckpointError
from perfgate.subjects.model import TASKS, LoadedModel
from perfgate.subjects.technique import Requirement, Technique, Variant, module_variant

SHARDED, PICKLED = "sharded", "bin"
OFFLOAD_CPU_BYTES = 200 * 2**20  # what the offload strategies allow in RAM: below a 0.5 GB model
MIB = 2**20
RESAVE = "fix: copy or download it again, or re-save the model with save_pretrained()"
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip


class LoadStrategy(Technique):
    """``load`` returns the module and what it placed where; ``apply`` serves that module."""

    tasks = frozenset({"feature-extraction", "text-classification", "text-generation"})
    form: ClassVar[str] = ""  # the checkpoint form it reads: "" (one safetensors file), "sharded", "bin"

    def checkpoint(self, location: Path) -> Path:
        """The checkpoint directory this strategy reads, checked before anything loads (``check_checkpoint``)."""
        path = location / self.form if self.form else location
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{self.name} reads the {self.form or 'single-file'} checkpoint at {path}, which is missing: "
                f"the load fixtures write it (fixtures/models.py checkpoint_forms); rebuild the model's cache entry"
            )
        check_checkpoint(path)
        return path

    def load(self, task: str, location: Path, workdir: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
        from perfgate.subjects.model import load_module

        module = load_module(task, self.checkpoint(location), device, **self.options(workdir))
        return module, self.details()

    def options(self, workdir: Path) -> dict[str, Any]:
        """``from_pretrained``'s options beyond fp32 and safetensors."""
        return {}

    def details(self) -> dict[str, Any]:
        """What the report shows of this strategy's settings."""
        return {}

    def clean_up(self, workdir: Path) -> None:  # only offloading leaves files behind
        """Remove what loading wrote under ``workdir`` once the load has been measured."""

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        start = time.perf_counter()
        module, details = self.load(model.task, Path(model.location), workdir, model.device)
        dtype = next(iter(module.parameters())).dtype
        return module_variant(self.name, model, module, start, {**details, **placement(module)}, input_dtype=dtype)


class SingleFile(LoadStrategy):
    name = "load-safetensors"
    summary = "from_pretrained of one safetensors file (memory-mapped), fp32"


class Sharded(LoadStrategy):
    name = "load-sharded"
    summary = "from_pretrained of ~100 MiB safetensors shards with an index, fp32"
    form = SHARDED


class Pickled(LoadStrategy):
    name = "load-bin"
    summary = "from_pretrained of a pytorch_model.bin, read with torch.load(weights_only=True)"
    form = PICKLED

    def load(self, task: str, location: Path, workdir: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
        import transformers

        auto = getattr(transformers, TASKS[task])
        module = auto.from_pretrained(self.checkpoint(location), use_safetensors=False, dtype="float32")
        return module.to(device).eval(), {"weights_only": True}


class ConvertToBf16(LoadStrategy):
    name = "load-bf16"
    summary = "from_pretrained of the fp32 file converting to bf16 while loading (dtype=bfloat16)"

    def options(self, workdir: Path) -> dict[str, Any]:
        return {"dtype": "bfloat16"}


class _Offload(LoadStrategy):
    requires = (Requirement("accelerate", "pip install accelerate"),)
    max_memory_cpu: ClassVar[int] = OFFLOAD_CPU_BYTES

    def checkpoint(self, location: Path) -> Path:
        path = super().checkpoint(location)
        self.check_budget(path)
        return path

    def max_memory(self) -> dict[int | str, int]:
        """accelerate's ``max_memory``: what each device may hold, the rest going to the offload folder."""
        return {"cpu": self.max_memory_cpu}

    def details(self) -> dict[str, Any]:
        return {"max_memory_cpu": self.max_memory_cpu}

    def folder(self, workdir: Path) -> Path:
        return workdir / "offload" / self.name

    def clean_up(self, workdir: Path) -> None:
        """The offloaded weights (hundreds of MB) do not outlive the load that measured them."""
        shutil.rmtree(self.folder(workdir), ignore_errors=True)

    def offload_folder(self, workdir: Path) -> Path:
        """An empty, writable folder (a folder of an earlier load would be read, not written)."""
        folder = self.folder(workdir)
        try:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError as error:
            raise CheckpointError(folder, f"the offload folder cannot be written ({error.strerror})",
                                  "fix: give offload_folder a writable directory with room for the offloaded "
                                  "weights") from None  # fmt: skip
        return folder

    def check_budget(self, checkpoint: Path) -> None:
        """accelerate holds one whole layer in RAM to run it: a budget below the largest cannot work (it would
        put every weight on disk and fail with a message about a device named "disk")."""
        name, size = largest_layer(checkpoint)
        if size > self.max_memory_cpu:
            raise CheckpointError(checkpoint, f"max_memory cpu={self.max_memory_cpu / MIB:.0f} MiB is smaller than "
                                  f"its largest layer, {name} ({size / MIB:.0f} MiB)",
                                  f"fix: allow at least {size / MIB:.0f} MiB of RAM, or use a device with more "
                                  "memory")  # fmt: skip


class OffloadToDisk(_Offload):
    name = "load-offload"
    summary = 'device_map="auto" with max_memory {"cpu": 200MiB}: the rest offloaded to a disk folder'

    def options(self, workdir: Path) -> dict[str, Any]:
        return {
            "device_map": "auto",
            "max_memory": self.max_memory(),
            "offload_folder": str(self.offload_folder(workdir)),
        }


class OffloadAcrossGpuCpuDisk(OffloadToDisk):
    name = "load-gpu-cpu-disk"
    summary = 'device_map="auto" with max_memory {GPU 0: 150MiB, cpu: 150MiB}: the rest offloaded to disk'
    devices = frozenset({"cuda"})
    max_memory_cpu = 150 * MIB  # above GPT-2's 147 MiB embedding, the largest layer
    max_memory_gpu: ClassVar[int] = 150 * MIB

    def max_memory(self) -> dict[int | str, int]:
        return {0: self.max_memory_gpu, "cpu": self.max_memory_cpu}


class EmptyThenDispatch(_Offload):
    name = "load-dispatch"
    summary = "init_empty_weights, then load_checkpoint_and_dispatch with no_split_module_classes (200 MiB in RAM)"

    def load(self, task: str, location: Path, workdir: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
        import accelerate
        import transformers

        path = self.checkpoint(location)
        config = transformers.AutoConfig.from_pretrained(path)
        with accelerate.init_empty_weights():
            empty = getattr(transformers, TASKS[task]).from_config(config)
        empty.tie_weights()
        no_split = list(getattr(empty, "_no_split_modules", None) or [])
        module = accelerate.load_checkpoint_and_dispatch(
            empty, str(path), device_map="auto", max_memory=self.max_memory(),
            offload_folder=str(self.offload_folder(workdir)), no_split_module_classes=no_split, dtype="float32",
        )  # fmt: skip
        return module.eval(), {"no_split_module_classes": no_split, **self.details()}


class RandomInitThenStateDict(LoadStrategy):
    """What the others avoid: every weight initialised at random, then the checkpoint read in full and
    copied over. The reference the load checks must fail on."""

    name = "load-state-dict"
    summary = "anti-pattern: from_config (random init), then the whole file read and load_state_dict"
    derive_thresholds = False  # its bounds are load-safetensors' promise, which it is there to break

    def load(self, task: str, location: Path, workdir: Path, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
        import transformers
        from safetensors.torch import load_file

        path = self.checkpoint(location)
        config = transformers.AutoConfig.from_pretrained(path)
        module = getattr(transformers, TASKS[task]).from_config(config)
        state = load_file(path / "model.safetensors")
        missing, unexpected = module.load_state_dict(state, strict=False)
        del state
        return module.to(device).eval(), {"missing_keys": len(missing), "unexpected_keys": len(unexpected)}


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


def check_checkpoint(path: Path) -> None:
    """Refuse a checkpoint that cannot load, naming the file: an index that names a missing shard, a
    safetensors file shorter than its own header says. Read from the headers alone (a few KB)."""
    for index in sorted(path.glob("*.index.json")):
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (ValueError, KeyError) as error:
            raise CheckpointError(index, f"not a shard index ({error})", RESAVE) from None
        for shard in sorted(set(weight_map.values())):
            if not (path / shard).is_file():
                raise CheckpointError(index, f"names shard {shard!r}, which is missing from {path}", RESAVE)
    for file in sorted(path.glob("*.safetensors")):
        safetensors_header(file)


def safetensors_header(file: Path) -> dict[str, Any]:
    """The tensors a safetensors file declares, after checking that the file holds all their bytes.
    Written here rather than left to ``safe_open`` so the message can say how many bytes are missing."""
    size = file.stat().st_size
    with file.open("rb") as stream:
        length = int.from_bytes(stream.read(8), "little") if size >= 8 else 0
        if size < 8 or 8 + length > size:
            raise CheckpointError(file, f"truncated: {size} bytes, shorter than its own header", RESAVE)
        try:
            header: dict[str, Any] = json.loads(stream.read(length))
        except ValueError as error:
            raise CheckpointError(file, f"its header is not valid JSON ({error})", RESAVE) from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = 8 + length + max((t["data_offsets"][1] for t in tensors.values()), default=0)
    if end > size:
        raise CheckpointError(file, f"truncated: its header describes {end} bytes, the file holds {size} "
                              f"({end - size} missing)", RESAVE)  # fmt: skip
    return tensors


def largest_layer(path: Path) -> tuple[str, int]:
    """The largest layer of a safetensors checkpoint and its bytes: tensors grouped by the module that
    holds them, a numbered block (``h.3``, ``layer.11``) taken whole, as accelerate places it."""
    sizes: dict[str, int] = {}
    for file in sorted(path.glob("*.safetensors")):
        for name, tensor in safetensors_header(file).items():
            block = re.match(r"(.*?\.\d+)\.", name)
            layer = block.group(1) if block else name.rpartition(".")[0] or name
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            sizes[layer] = sizes.get(layer, 0) + count * DTYPE_BYTES.get(tensor["dtype"], 4)
    if not sizes:
        return "", 0
    layer = max(sizes, key=lambda k: sizes[k])
    return layer, sizes[layer]
