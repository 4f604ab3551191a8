"""ONNX Runtime: export, graph optimization levels O1-O4, and int8 (dynamic per channel or per tensor,
static calibrated on the fixture sentences).

Levels as optimum defines them: O1 basic graph optimizations; O2 adds the transformer fusions
(attention, LayerNorm, GELU); O3 adds the GELU approximation (fidelity shows its cost); O4 is O3 in fp16
for GPUs, so it needs onnxruntime-gpu's CUDA execution provider. Every session asserts that the
provider asked for is the one it runs on: no silent CPU fallback.

Two back-ends build the same artifacts:
- ``optimum``: optimum-onnx's exporter, ORTOptimizer (O2) and ORTQuantizer, where it installs
  (transformers < 4.58);
- ``torch``: ``torch.onnx.export`` plus onnxruntime's own transformer optimizer and quantizer, for
  transformers 5. Its optimizer does not fuse attention in these exports, and quantizing its output
  fails, so int8 quantizes the raw export there.
Both are run through a plain ``onnxruntime.InferenceSession`` so they are timed the same way.
Artifacts are cached by model content, so the memory subprocess reuses them instead of exporting again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from perfgate.subjects.model import LoadedModel, content_digest
from perfgate.subjects.technique import RUNTIME_PROFILE_ENV, Requirement, Technique, Variant, changed_setting

if TYPE_CHECKING:
    import torch

ENCODER_TASKS = frozenset({"feature-extraction", "text-classification"})
OPTIMUM_TASKS = {
    "feature-extraction": "ORTModelForFeatureExtraction",
    "text-classification": "ORTModelForSequenceClassification",
}


def backend() -> str:
    return "optimum" if importlib.util.find_spec("optimum.onnxruntime") is not None else "torch"


class _OnnxRuntime(Technique):
    requires = (
        Requirement("onnxruntime", "pip install onnxruntime"),
        Requirement("onnx", "pip install onnx"),
    )
    devices = frozenset({"cpu"})
    tasks = ENCODER_TASKS
    level: ClassVar[int] = 2
    quantize: ClassVar[str | None] = None  # "per-channel", "per-tensor" (dynamic) or "static"
    provider: ClassVar[str] = "CPUExecutionProvider"
    spinning: ClassVar[bool] = True  # ORT's default: its pool spins after a run, waiting for the next
    session_optimizations: ClassVar[bool] = True  # ORT's default: the session optimizes the graph again
    builds_artifacts = True

    def unavailable_reason(self, task: str, device: str) -> str | None:
        reason = super().unavailable_reason(task, device)
        if reason is None and self.provider != "CPUExecutionProvider":
            import onnxruntime

            if self.provider not in onnxruntime.get_available_providers():
                return (
                    f"{self.name} needs ONNX Runtime's {self.provider}, and this onnxruntime build has only "
                    f"{', '.join(onnxruntime.get_available_providers())}: pip install onnxruntime-gpu"
                )
        return reason

    def prepare(self, model: LoadedModel, workdir: Path) -> None:
        self._artifact(model, *self._artifact_dir(model, workdir))

    def _artifact_dir(self, model: LoadedModel, workdir: Path) -> tuple[Path, str]:
        if not isinstance(model.location, Path):
            raise ValueError(f"{self.name} exports from a local directory, got {model.location!r}")
        chosen = backend()
        return workdir / f"{model.name}-{content_digest(model.location)}-{chosen}", chosen

    def apply(self, model: LoadedModel, workdir: Path, threads: int | None) -> Variant:
        import onnxruntime

        artifact_dir, chosen = self._artifact_dir(model, workdir)
        start = time.perf_counter()
        onnx_file, cached = self._artifact(model, artifact_dir, chosen)
        prepare_seconds = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        settings = []
        if threads:
            options.intra_op_num_threads = threads
            settings.append(changed_setting("onnxruntime intra_op_num_threads", threads, "0 (one per physical core)",
                                            "the thread count both arms of the case run with"))  # fmt: skip
        if not self.spinning:
            # ORT's pool spins for tens of milliseconds after each run (the default): what a service that
            # shares its cores turns off. The A/B itself stays fair with spinning on (compare's settle gap).
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            settings.append(changed_setting("onnxruntime session.intra_op.allow_spinning", 0, 1,
                                            "the variant: a service that shares its cores"))  # fmt: skip
            # With the intra-op pool quiet, ORT's default inter-op pool held the cores: the torch arm beside it
            # ran 30-60x slower (245-412 ms a MiniLM call against 7 ms, cpu-avx512-bf16, 2026-12-07).
            options.inter_op_num_threads = 1
            settings.append(changed_setting(
                "onnxruntime inter_op_num_threads", 1, "0 (ORT's choice)",
                "with spinning off, ORT's idle inter-op pool took the other arm's cores",
            ))  # fmt: skip
        if not self.session_optimizations:
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
            settings.append(changed_setting("onnxruntime graph_optimization_level", "ORT_DISABLE_ALL",
                                            "ORT_ENABLE_ALL", "the graph as exported, no fusion at load"))  # fmt: skip
        profile_prefix = os.environ.get(RUNTIME_PROFILE_ENV)
        if profile_prefix:  # perfgate explain: ORT times each of its own nodes, which torch's profiler cannot see
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=[self.provider])
        if session.get_providers()[0] != self.provider:
            raise RuntimeError(f"{self.name}: asked for {self.provider}, the session runs on {session.get_providers()}")
        if self.provider == "CUDAExecutionProvider":
            first_output = io_bound_runner(session, "cuda", _device_index(model.device))
        else:
            first_output = host_runner(session)

        def run(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            return model.primary_output((first_output(inputs),), inputs)

        disk = onnx_file.stat().st_size + sum(p.stat().st_size for p in onnx_file.parent.glob("*.data"))
        return Variant(
            self.name,
            run,
            memory_bytes=disk,  # ORT holds the initializers in memory; the file size is their size
            disk_bytes=disk,
            prepare_seconds=prepare_seconds,
            settings=settings,
            end_profiling=session.end_profiling if profile_prefix else None,
            details={
                "backend": chosen,
                "level": f"O{self.level}",
                "quantization": self.quantize,
                "provider": session.get_providers()[0],
                "artifact": str(onnx_file),
                "cached": cached,
                "nodes": _node_count(onnx_file),
            },
        )

    def _artifact(self, model: LoadedModel, artifact_dir: Path, chosen: str) -> tuple[Path, bool]:
        """The graph at this level (exported once per model content and back-end) and, for int8, its
        quantized copy."""
        optimized = artifact_dir / f"model_o{self.level}.onnx"
        suffix = "" if self.quantize != "static" else "_" + _texts_digest(model.calibration_texts)
        quantized = artifact_dir / f"model_o{self.level}_{self.quantize}{suffix}.onnx"
        target = optimized if self.quantize is None else quantized
        if target.is_file():
            return target, True
        artifact_dir.mkdir(parents=True, exist_ok=True)
        # Exporters and quantizers write temporary files into the working directory: keep them in scratch.
        with tempfile.TemporaryDirectory(dir=artifact_dir) as scratch, _working_directory(Path(scratch)):
            if not optimized.is_file():
                build = _build_with_optimum if chosen == "optimum" else _build_with_torch
                _publish(build(model, Path(scratch), self.level), optimized)
            if self.quantize == "static":
                _publish(_quantize_static(model, optimized, Path(scratch)), target)
            elif self.quantize is not None:
                _publish(_quantize(optimized, Path(scratch), per_channel=self.quantize == "per-channel"), target)
        return target, False


def _model_inputs(session: Any, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The graph's inputs from the tokenizer's; an export that takes token types gets zeros where the
    tokenizer gave none (as the model's forward would assume)."""
    import torch

    feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
    if any(i.name == "token_type_ids" for i in session.get_inputs()) and "token_type_ids" not in feed:
        feed["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
    return feed


def host_runner(session: Any) -> Any:
    """The first output of ``session`` (a CPU provider) as a torch tensor beside the inputs."""
    import torch

    def first_output(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        feed = {name: tensor.cpu().numpy() for name, tensor in _model_inputs(session, inputs).items()}
        return torch.from_numpy(session.run(None, feed)[0]).to(inputs["input_ids"].device)

    return first_output


def io_bound_runner(session: Any, device_type: str, device_id: int) -> Any:
    """The first output of ``session`` with inputs and output bound where they live (IO binding): on
    CUDA nothing is copied between host and device inside a timed call, as the torch arm copies nothing.
    The output is a torch tensor allocated beside the inputs, in the shape the graph declares."""
    import numpy as np
    import torch

    output = session.get_outputs()[0]
    binding = session.io_binding()

    def first_output(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        feed = {name: tensor.contiguous() for name, tensor in _model_inputs(session, inputs).items()}
        for name, tensor in feed.items():
            binding.bind_input(name, device_type, device_id, np.int64, tuple(tensor.shape), tensor.data_ptr())
        batch, length = inputs["input_ids"].shape
        result = torch.empty(
            output_shape(output.shape, batch, length), dtype=torch.float32, device=inputs["input_ids"].device
        )
        binding.bind_output(output.name, device_type, device_id, np.float32, tuple(result.shape), result.data_ptr())
        session.run_with_iobinding(binding)
        return result

    return first_output


def output_shape(declared: list[Any], batch: int, length: int) -> tuple[int, ...]:
    """A graph output's shape for one batch: its fixed dimensions as declared, its symbolic ones (named
    by the exporter, whatever the name) the batch first and the sequence second."""
    shape = []
    for position, dimension in enumerate(declared):
        if isinstance(dimension, int):
            shape.append(dimension)
        elif position in (0, 1):
            shape.append((batch, length)[position])
        else:
            raise ValueError(f"output dimension {position} is symbolic ({dimension!r}): only batch and sequence may be")
    return tuple(shape)


def _device_index(device: str) -> int:
    return int(device.partition(":")[2] or 0)


def _publish(built: Path, target: Path) -> None:
    """Move a finished graph (and any external-data file beside it) into the cache in one rename each."""
    for extra in built.parent.glob("*.data"):
        os.replace(extra, target.parent / extra.name)
    os.replace(built, target)


class OptimizedO1(_OnnxRuntime):
    name = "onnxruntime-o1"
    summary = "ONNX export with O1 (basic) graph optimizations, fp32"
    level = 1


class OptimizedO2(_OnnxRuntime):
    name = "onnxruntime-o2"
    summary = "ONNX export with O2 graph optimization (attention/LayerNorm/GELU fusion), fp32"
    level = 2


class OptimizedO2NoSpin(_OnnxRuntime):
    name = "onnxruntime-o2-nospin"
    summary = "ONNX Runtime O2 with its pool's spinning off: for services whose cores are shared"
    spinning = False


class OptimizedO3(_OnnxRuntime):
    name = "onnxruntime-o3"
    summary = "ONNX export with O3: O2 fusions plus the GELU approximation, fp32"
    level = 3


class OptimizedO4(_OnnxRuntime):
    name = "onnxruntime-o4"
    summary = "ONNX export with O4: O3 in fp16, on the CUDA execution provider"
    level = 4
    devices = frozenset({"cuda"})
    provider = "CUDAExecutionProvider"


class CudaO2(_OnnxRuntime):
    name = "onnxruntime-cuda-o2"
    summary = "ONNX export with O2 fusions, fp32, on the CUDA execution provider"
    devices = frozenset({"cuda"})
    provider = "CUDAExecutionProvider"


class DynamicInt8(_OnnxRuntime):
    name = "onnxruntime-o2-int8-dynamic"
    role = "quantizer"
    summary = "ONNX export, O2 fusion, dynamic int8 with per-channel weights"
    quantize = "per-channel"


class DynamicInt8NoSpin(_OnnxRuntime):
    name = "onnxruntime-o2-int8-dynamic-nospin"
    role = "quantizer"
    summary = "ONNX Runtime O2 with dynamic int8 per channel, its pool's spinning off (shared cores)"
    quantize = "per-channel"
    spinning = False


class DynamicInt8PerTensor(_OnnxRuntime):
    name = "onnxruntime-o2-int8-dynamic-per-tensor"
    role = "quantizer"
    summary = "ONNX export, O2 fusion, dynamic int8 with one weight scale per tensor"
    quantize = "per-tensor"


class StaticInt8(_OnnxRuntime):
    name = "onnxruntime-o1-int8-static"
    role = "quantizer"
    summary = "ONNX export, O1, static int8 (QDQ) calibrated on the evaluation sentences (min-max)"
    level = 1  # the quantizer's calibration and shape inference need the unfused graph
    quantize = "static"


def _build_with_optimum(model: LoadedModel, scratch: Path, level: int) -> Path:
    import optimum.onnxruntime as ort
    from optimum.onnxruntime.configuration import AutoOptimizationConfig

    exported = getattr(ort, OPTIMUM_TASKS[model.task]).from_pretrained(model.location, export=True)
    optimizer = ort.ORTOptimizer.from_pretrained(exported)
    config = getattr(AutoOptimizationConfig, f"O{level}")()
    optimizer.optimize(save_dir=scratch / "optimized", optimization_config=config)
    return scratch / "optimized" / "model_optimized.onnx"


def _build_with_torch(model: LoadedModel, scratch: Path, level: int) -> Path:
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    sample = model.inputs(["perfgate export sample", "a second, somewhat longer sample sentence"])
    names: list[str] = [n for n in model.forward_arguments() if n in sample]

    class TensorsOnly(torch.nn.Module):
        """forward(*tensors) -> first output: transformers 5's forward decorators collide with the
        tracer's argument passing (``use_cache`` given twice); keywords from a plain wrapper do not."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = model.module

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, tensors, strict=True)), return_dict=True)[0]  # type: ignore[no-any-return]

    raw = scratch / "model.onnx"
    torch.onnx.export(
        TensorsOnly().eval(),
        tuple(sample[n] for n in names),
        str(raw),
        input_names=names,
        output_names=["output"],
        dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names},
        dynamo=False,
        opset_version=17,
    )
    from onnxruntime.transformers.fusion_options import FusionOptions

    config = model.config
    fusion = FusionOptions("bert")
    fusion.enable_gelu_approximation = level >= 3
    optimized_model = optimize_model(
        str(raw), model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size,
        opt_level=min(level, 2), only_onnxruntime=level == 1, optimization_options=fusion, use_gpu=level == 4,
    )  # fmt: skip
    if level == 4:
        optimized_model.convert_float_to_float16(keep_io_types=True)
    optimized = scratch / "model_optimized.onnx"
    optimized_model.save_model_to_file(str(optimized))
    return optimized


def _quantize(optimized: Path, scratch: Path, per_channel: bool) -> Path:
    """Dynamic int8 on the optimized graph. Fused contrib ops defeat the quantizer's shape inference, so
    it is told that untyped tensors are float (they are: this is an fp32 graph)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = scratch / "model_int8.onnx"
    quantize_dynamic(
        str(optimized),
        str(quantized),
        per_channel=per_channel,
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return quantized


def _quantize_static(model: LoadedModel, graph: Path, scratch: Path) -> Path:
    """Static int8 (QDQ, min-max calibration) of the MatMul/Gemm layers, on the sentences the worker was
    given (quantizing LayerNorm and the residual adds as well costs MiniLM most of its fidelity). Every
    calibration batch has the same length (the calibrator stacks them): one fixed, padded length."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    if not model.calibration_texts:
        raise ValueError(f"static int8 of {model.name!r} needs calibration sentences; none were given")
    names = {i.name for i in onnx.load(str(graph), load_external_data=False).graph.input}
    batches = [
        {k: v.cpu().numpy() for k, v in model.inputs([text], CALIBRATION_LENGTH).items() if k in names}
        for text in model.calibration_texts
    ]

    class Sentences(CalibrationDataReader):  # type: ignore[misc]  # untyped in onnxruntime
        def __init__(self) -> None:
            self.pending = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            return next(self.pending, None)

    quantized = scratch / "model_int8_static.onnx"
    quantize_static(
        str(graph), str(quantized), Sentences(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )  # fmt: skip
    return quantized


CALIBRATION_LENGTH = 64


def _texts_digest(texts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]


def _node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


@contextlib.contextmanager
def _working_directory(path: Path) -> Any:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(previous)
