"""Models under test: where they come from, how they load, and what output is compared.

A ``ModelSource`` says where a model lives (a local directory, a hub id, or a seeded builder that writes
one into the cache) and its task. ``load`` gives a ``LoadedModel``: the fp32 eager module, its
tokenizer, and the task's *primary output* (pooled embedding, class logits, next-token logits) that
every technique is compared on.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.errors import ConfigError, ModelNotFoundError, UnknownModelError

if TYPE_CHECKING:
    import torch

__all__ = ["TASKS", "LoadedModel", "ModelRegistry", "ModelSource", "load_model"]

# task -> transformers auto class that loads it
TASKS: Mapping[str, str] = {
    "feature-extraction": "AutoModel",
    "text-classification": "AutoModelForSequenceClassification",
    "text-generation": "AutoModelForCausalLM",
    "text2text-generation": "AutoModelForSeq2SeqLM",
}

Builder = Callable[[Path], None]


@dataclass(frozen=True)
class ModelSource:
    name: str
    task: str
    path: Path | None = None
    hub_id: str | None = None
    build: Builder | None = field(default=None, compare=False)
    build_key: str = ""  # bump when the builder changes: it names the cache entry
    eval_file: Path | None = None
    origin: str = "built-in"
    tags: frozenset[str] = frozenset({"default"})
    # Why this model cannot be had here (a package its weights come from is not installed), or None:
    # its cases are skipped with this reason.
    unavailable: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(
                f"model {self.name!r} (from {self.origin}): task={self.task!r} is not one of {', '.join(TASKS)}"
            )
        if sum(x is not None for x in (self.path, self.hub_id, self.build)) != 1:
            raise ConfigError(f"model {self.name!r} (from {self.origin}): give exactly one of path, hub_id, build")

    def resolve(self, cache_dir: Path) -> Path | str:
        """A local directory (built into the cache on first use) or a hub id."""
        if self.hub_id is not None:
            return self.hub_id
        if self.path is not None:
            if not (self.path / "config.json").is_file():
                raise ModelNotFoundError(self.name, self.path, self.origin)
            return self.path
        assert self.build is not None
        target = cache_dir / f"{self.name}-{self.build_key or 'v1'}"
        if not (target / "config.json").is_file():
            cache_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{self.name}-", dir=cache_dir))
            try:
                self.build(staging)
                os.replace(staging, target)  # atomic: a crash never leaves a half-built model
            except OSError:
                if not (target / "config.json").is_file():  # not a lost race with another builder
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return target


class ModelRegistry:
    def __init__(self) -> None:
        self._sources: dict[str, ModelSource] = {}

    def add(self, source: ModelSource) -> None:
        self._sources[source.name] = source

    def get(self, name: str) -> ModelSource:
        try:
            return self._sources[name]
        except KeyError:
            raise UnknownModelError(name, list(self._sources)) from None

    def names(self, tag: str | None = None, tasks: Sequence[str] | None = None) -> list[str]:
        return [
            s.name
            for s in self._sources.values()
            if (tag is None or tag in s.tags) and (tasks is None or s.task in tasks)
        ]


class LoadedModel:
    """A model as a worker holds it: tokenizer and config at once, the fp32 module on first use.

    Loading the module lazily lets a variant that serves from its own artifact (an ONNX graph already
    built) be measured without the fp32 weights it was built from ever being resident."""

    def __init__(
        self, name: str, task: str, location: Path | str, tokenizer: Any, config: Any, device: str = "cpu",
        module: Any = None, loader: Callable[[], Any] | None = None,
    ) -> None:  # fmt: skip
        self.name, self.task, self.location, self.device = name, task, location, device
        self.tokenizer, self.config = tokenizer, config
        self._module, self._loader = module, loader
        self.input_dtype: Any = None  # set on a view whose module wants floating inputs in another dtype
        self.stacked = False  # True on a view serving the module a stack's previous part produced
        self.calibration_texts: list[str] = []  # sentences a calibrating technique may use (the run's own)

    def with_module(self, module: Any, input_dtype: Any = None) -> LoadedModel:
        """The same model (tokenizer, config, location) serving from ``module``: what the next part of a
        stack is applied to."""
        view = LoadedModel(self.name, self.task, self.location, self.tokenizer, self.config, self.device, module)
        view.input_dtype = input_dtype or self.input_dtype
        view.calibration_texts = self.calibration_texts
        view.stacked = True
        return view

    @property
    def module(self) -> Any:
        """The fp32 eager module (a transformers PreTrainedModel in eval mode), loaded on first use."""
        if self._module is None:
            if self._loader is None:
                raise RuntimeError(
                    f"model {self.name!r}: the fp32 module was released and cannot be reloaded: a technique's "
                    "variant still serves through it; return Variant(..., independent_of_source=False) from "
                    "that technique's apply() so the worker keeps the module while the variant lives"
                )
            self._module = self._loader()
        return self._module

    @property
    def module_loaded(self) -> bool:
        return self._module is not None

    def release_module(self) -> None:
        """Drop the fp32 module for good (a variant that no longer needs it is measured alone)."""
        self._module, self._loader = None, None

    def inputs(self, texts: Sequence[str], seq_len: int | None = None) -> dict[str, torch.Tensor]:
        """Tokenized inputs for a batch: padded to the longest text, or to exactly ``seq_len`` tokens."""
        padding: dict[str, Any] = (
            {"padding": "max_length", "max_length": seq_len, "truncation": True}
            if seq_len
            else {"padding": "longest", "truncation": True, "max_length": 512}
        )
        encoded = dict(self.tokenizer(list(texts), return_tensors="pt", **padding))
        if "token_type_ids" in encoded and "token_type_ids" not in self.forward_arguments():
            del encoded["token_type_ids"]  # GPT-2 style models take none
        if self.task == "text2text-generation":
            import torch

            start = self.config.decoder_start_token_id
            encoded["decoder_input_ids"] = torch.full((len(texts), 1), start, dtype=torch.long)
        return {k: v.to(self.device) for k, v in encoded.items()}

    def forward_arguments(self) -> list[str]:
        """The model class's forward() parameters, in order (read from the class: no weights needed)."""
        import inspect

        import transformers

        model_class = getattr(transformers, TASKS[self.task])._model_mapping[type(self.config)]
        return list(inspect.signature(model_class.forward).parameters)[1:]  # without self

    def primary_output(self, output: Any, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return primary_output(self.task, output, inputs)

    def run(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            return self.primary_output(self.module(**inputs), inputs)

    def parameter_bytes(self) -> int:
        return module_bytes(self.module)


def primary_output(task: str, output: Any, inputs: Mapping[str, Any]) -> torch.Tensor:
    """The tensor techniques are compared on, one row per input text."""
    import torch

    first = output[0] if isinstance(output, (tuple, list)) else None
    if task == "feature-extraction":  # mean pooling over real tokens, as sentence-transformers does
        hidden = torch.as_tensor(first if first is not None else output.last_hidden_state)
        mask = torch.as_tensor(inputs["attention_mask"]).unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    logits = torch.as_tensor(first if first is not None else output.logits)
    if task == "text-classification":
        return logits
    if task == "text-generation":  # next-token logits after each text's last real token (right padding)
        last = torch.as_tensor(inputs["attention_mask"]).sum(1) - 1
        return logits[torch.arange(logits.shape[0]), last.to(logits.device)]
    return logits[:, -1]  # text2text: the first decoder step


def module_bytes(module: Any) -> int:
    """Bytes of parameters and buffers, packed int8 weights and quantized tensor subclasses included."""
    total = sum(tensor_bytes(t) for t in module.parameters())
    total += sum(tensor_bytes(t) for t in module.buffers())
    for sub in module.modules():  # quantized Linear keeps its weight in packed params, not parameters()
        packed = getattr(sub, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() * weight.element_size()
            total += 0 if bias is None else bias.numel() * bias.element_size()
    return int(total)


def tensor_bytes(tensor: Any) -> int:
    """Bytes a tensor holds. A tensor subclass that wraps others (torchao's quantized weights report
    their unpacked dtype through ``element_size``) is measured by the tensors it flattens to."""
    import torch

    if tensor is None:  # an optional inner tensor (a symmetric scheme's zero point)
        return 0
    data = tensor.data if isinstance(tensor, torch.nn.Parameter) else tensor
    flatten = getattr(data, "__tensor_flatten__", None)
    if flatten is None or type(data) is torch.Tensor:
        return int(data.numel() * data.element_size())
    names, _ = flatten()
    return sum(tensor_bytes(getattr(data, name)) for name in names)


def directory_bytes(path: Path) -> int:
    """Bytes of the weight files in a model directory (what loading reads from disk)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin"))


def model_class(task: str, location: Path | str) -> type:
    """The transformers class ``task``'s auto class loads for the model at ``location`` (config only)."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(location)
    found: type = getattr(transformers, TASKS[task])._model_mapping[type(config)]
    return found


def load_module(task: str, location: Path | str, device: str = "cpu", **options: Any) -> Any:
    """The task's module in eval mode on ``device``, from safetensors only (a pickle from an untrusted path
    is never executed); ``options`` go to ``from_pretrained`` (fp32 unless they say otherwise)."""
    import transformers

    auto = getattr(transformers, TASKS[task])
    module = auto.from_pretrained(location, use_safetensors=True, **{"dtype": "float32", **options})
    if "device_map" not in options and "quantization_config" not in options:
        module = module.to(device)
    return module.eval()


PLACEMENTS = ("copied", "mapped")
BASELINE_PLACEMENT = "copied"  # where timed fp32 weights live (``copy_weights``); recorded in the fingerprint


def load_model(
    name: str, task: str, location: Path | str, device: str = "cpu", placement: str = "mapped"
) -> LoadedModel:
    """Tokenizer and config now; fp32 weights on first use. ``placement`` ``"copied"`` moves the weights
    out of the memory-mapped safetensors file into torch's allocator (``copy_weights``); ``"mapped"``
    serves them as ``from_pretrained`` left them."""
    import transformers

    if placement not in PLACEMENTS:
        raise ValueError(f"placement {placement!r}: one of {', '.join(PLACEMENTS)}")

    def load_module_now() -> Any:
        module = load_module(task, location, device)
        return copy_weights(module) if placement == "copied" else module

    config = transformers.AutoConfig.from_pretrained(location)
    tokenizer = transformers.AutoTokenizer.from_pretrained(location)
    if tokenizer.pad_token is None:  # decoder tokenizers often ship without one
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    tokenizer.padding_side = "right"
    return LoadedModel(name, task, location, tokenizer, config, device, loader=load_module_now)


def copy_weights(module: Any) -> Any:
    """``module`` with every CPU parameter and buffer copied into torch's own allocator, in place.

    Weights mapped from a safetensors file start wherever the file's header puts them (MiniLM's: 24 bytes
    past a 64-byte boundary); a technique that copies or converts weights gets torch's 64-byte aligned
    allocations. That difference alone moved a copied fp32 MiniLM against the mapped one by -2.4% on an
    AVX2 EPYC and +3% on an AVX-512 one; the timed baseline is copied so that a candidate's weights and its
    own live alike. Tied weights stay tied: a shared Parameter is one object here."""
    import torch

    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()
    return module


def weight_placement(module: Any) -> dict[str, Any]:
    """Where ``module``'s weights start: the share of parameters aligned to 64 bytes and to a page."""
    parameters = list(module.parameters())
    return {
        "parameters": len(parameters),
        "aligned_64": sum(p.data_ptr() % 64 == 0 for p in parameters) / max(len(parameters), 1),
        "aligned_page": sum(p.data_ptr() % 4096 == 0 for p in parameters) / max(len(parameters), 1),
    }


def content_digest(path: Path) -> str:
    """Hash of a model directory's files, to key caches of artifacts derived from it."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(str(file.stat().st_size).encode())
        digest.update(str(file.stat().st_mtime_ns).encode())
    return digest.hexdigest()[:16]
