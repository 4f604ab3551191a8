"""What machine a measurement ran on: CPU flags, GPUs, library versions, and the hardware class.

The hardware class (``cpu-avx2``, ``cpu-avx512-vnni``, ``gpu-sm90``...) keys the thresholds: a result is
only judged against numbers measured on the same class. Nothing here runs at import time; the plugin
detects once per session and caches.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DETECTED_CLASSES",
    "FAMILIES",
    "CpuInfo",
    "GpuInfo",
    "Hardware",
    "cpu_class",
    "detect",
    "gpu_class",
    "known_class",
    "parse_cpuinfo",
]

FAMILIES = ("default", "cpu", "gpu")  # threshold sections shared by every class, or by every CPU/GPU class
# Every class cpu_class() can name; GPU classes follow the pattern gpu-smNN (gpu_class()).
DETECTED_CLASSES = (
    "cpu-amx", "cpu-avx512-bf16", "cpu-avx512-vnni", "cpu-avx512", "cpu-avx2-vnni", "cpu-avx2",
    "cpu-arm64-sve", "cpu-arm64", "cpu-generic",
)  # fmt: skip
GPU_CLASS = re.compile(r"gpu-sm\d{2,3}")
# Threshold sections by capability, between the family and the exact class: "cpu-bf16-native", ...
CAPABILITY = re.compile(r"(cpu|gpu)-(bf16|fp16|int8|fp8)-(native|emulated)")
# The first compute capability whose tensor cores do the dtype's matmuls (Volta fp16, Turing int8,
# Ampere bf16, Ada fp8).
GPU_NATIVE_FROM = {"fp16": (7, 0), "bf16": (8, 0), "int8": (7, 5), "fp8": (8, 9)}


def known_class(name: str, known: Iterable[str]) -> bool:
    """Whether a thresholds section names a class, family or capability this run could be judged as."""
    return name in set(known) or GPU_CLASS.fullmatch(name) is not None or CAPABILITY.fullmatch(name) is not None


TRACKED_LIBRARIES = (
    "torch", "transformers", "optimum", "optimum-onnx", "onnxruntime", "onnxruntime-gpu",
    "bitsandbytes", "accelerate", "torchao", "numpy", "perfgate",
)  # fmt: skip

# Flags that change which kernels the libraries can use; the fingerprint records these.
INTERESTING_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve",
)  # fmt: skip


@dataclass(frozen=True)
class CpuInfo:
    model: str
    flags: frozenset[str]
    logical_cores: int
    machine: str = "x86_64"

    @property
    def bf16_native(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def fp16_native(self) -> bool:
        return bool({"avx512_fp16", "amx_fp16"} & self.flags)

    @property
    def int8_dot_product(self) -> bool:
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: tuple[int, int]
    total_memory_bytes: int
    driver: str = ""
    cuda: str = ""


def parse_cpuinfo(text: str, machine: str = "x86_64") -> CpuInfo:
    """Read ``/proc/cpuinfo`` text (x86 ``flags`` or ARM ``Features``)."""
    model, flags, cores = "unknown", frozenset[str](), 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            cores += 1
        elif key in ("model name", "CPU part") and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model=model, flags=flags, logical_cores=max(cores, 1), machine=machine)


def cpu_class(cpu: CpuInfo) -> str:
    """Name the CPU by the widest int8/bf16/vector kernels it can run."""
    f = cpu.flags
    if cpu.machine in ("aarch64", "arm64"):
        return "cpu-arm64-sve" if "sve" in f else "cpu-arm64"
    if "amx_tile" in f:
        return "cpu-amx"
    if "avx512f" in f:
        if "avx512_bf16" in f:
            return "cpu-avx512-bf16"
        return "cpu-avx512-vnni" if "avx512_vnni" in f else "cpu-avx512"
    if "avx2" in f:
        return "cpu-avx2-vnni" if "avx_vnni" in f else "cpu-avx2"
    return "cpu-generic"


def gpu_class(gpu: GpuInfo) -> str:
    major, minor = gpu.compute_capability
    return f"gpu-sm{major}{minor}"


@dataclass(frozen=True)
class Hardware:
    cpu: CpuInfo
    gpus: tuple[GpuInfo, ...] = ()
    libraries: Mapping[str, str] = field(default_factory=dict)
    class_override: str | None = None

    @property
    def has_cuda(self) -> bool:
        return bool(self.gpus)

    def gpu(self, device: str) -> GpuInfo:
        """The GPU ``cuda`` / ``cuda:N`` names in this process's list."""
        return self.gpus[int(device.partition(":")[2] or 0)]

    def hardware_class(self, device: str = "cpu") -> str:
        """The class of the device a case runs on; ``cuda`` means the first GPU."""
        if self.class_override:
            return self.class_override
        if device.startswith("cuda"):
            if not self.gpus:
                return "gpu-none"
            return gpu_class(self.gpu(device))
        return cpu_class(self.cpu)

    def native_math(self, dtype: str, device: str = "cpu") -> bool:
        """Whether ``device`` has native arithmetic for ``dtype`` ("bf16", "fp16", "int8"; "fp8" on GPUs)."""
        if device.startswith("cuda"):
            if not self.gpus:
                return False
            return self.gpu(device).compute_capability >= GPU_NATIVE_FROM[dtype]
        return {
            "bf16": self.cpu.bf16_native,
            "fp16": self.cpu.fp16_native,
            "int8": self.cpu.int8_dot_product,  # VNNI or AMX int8 dot products
        }.get(dtype, False)

    def capability(self, dtype: str, device: str = "cpu") -> str:
        """The thresholds section for ``dtype`` math on ``device``: ``cpu-bf16-native``, ``gpu-fp16-emulated``..."""
        family = "gpu" if device.startswith("cuda") else "cpu"
        return f"{family}-{dtype}-{'native' if self.native_math(dtype, device) else 'emulated'}"

    def fingerprint(self) -> dict[str, Any]:
        return {
            "hardware_class": {"cpu": self.hardware_class("cpu"), "cuda": self.hardware_class("cuda")},
            "cpu": {
                "model": self.cpu.model,
                "machine": self.cpu.machine,
                "logical_cores": self.cpu.logical_cores,
                "flags": sorted(self.cpu.flags & set(INTERESTING_FLAGS)),
                "bf16_native": self.cpu.bf16_native,
                "fp16_native": self.cpu.fp16_native,
                "int8_dot_product": self.cpu.int8_dot_product,
            },
            "gpus": [asdict(gpu) for gpu in self.gpus],
            "python": platform.python_version(),
            "libraries": dict(self.libraries),
            "memory": memory_settings(),
        }

    def describe(self) -> str:
        gpus = ", ".join(f"{g.name} ({gpu_class(g)})" for g in self.gpus) or "none"
        return f"cpu {self.hardware_class('cpu')} ({self.cpu.logical_cores} logical cores), cuda: {gpus}"


def memory_settings() -> dict[str, str | None]:
    """What places weights in memory beyond the code: the kernel's transparent huge page mode and
    whether torch's CPU allocator asks for huge pages."""
    try:
        enabled = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        mode: str | None = enabled[enabled.index("[") + 1 : enabled.index("]")]
    except (OSError, ValueError):
        mode = None
    return {"transparent_hugepage": mode, "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE")}


def cuda_settings() -> dict[str, Any]:
    """The flags that change CUDA speed and numerics without a change of code: TF32 for matmuls and
    cuDNN, float32 matmul precision, cuDNN's autotuner and determinism. Read where torch is already
    imported (a GPU was detected); the workers start from the same defaults unless a technique sets them."""
    import torch

    return {
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_version": torch.backends.cudnn.version(),  # type: ignore[no-untyped-call]
    }


def library_versions(names: Iterable[str] = TRACKED_LIBRARIES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _gpu_device_nodes(dev: Path = Path("/dev")) -> bool:
    """NVIDIA's driver nodes, or WSL's GPU paravirtualisation node, through which CUDA reaches a GPU."""
    return any(dev.glob("nvidia[0-9]*")) or (dev / "dxg").exists()


def detect_gpus() -> tuple[GpuInfo, ...]:
    """The GPUs torch sees: the one detection the plugin, ``perfgate gpus`` and ``require_gpu.sh`` share."""
    if platform.system() == "Linux" and not _gpu_device_nodes():
        return ()  # no driver node, no CUDA: skip importing torch (seconds) just to hear "no"
    try:
        import torch
    except ImportError:
        return ()
    if not torch.cuda.is_available():
        return ()
    driver = _nvml_driver_version()
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(
            GpuInfo(
                name=props.name,
                compute_capability=(props.major, props.minor),
                total_memory_bytes=props.total_memory,
                driver=driver,
                cuda=str(torch.version.cuda or ""),
            )
        )
    return tuple(gpus)


def _nvml_driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return str(pynvml.nvmlSystemGetDriverVersion())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML missing or no driver: the version is informative only
        return ""


def visible_gpus_report(gpus: Iterable[GpuInfo], torch_sees: int | None) -> tuple[bool, str]:
    """Whether a GPU run can go ahead, and what to print: the GPUs perfgate will run on, or why none.
    ``torch_sees``: ``torch.cuda.device_count()`` asked directly (None: not asked), so a detection that
    disagrees with torch fails loudly instead of every GPU test skipping green."""
    gpus = list(gpus)
    if gpus and (torch_sees is None or torch_sees == len(gpus)):
        lines = [
            f"cuda:{i}: {g.name} ({gpu_class(g)}, {g.total_memory_bytes / 2**30:.0f} GiB)" for i, g in enumerate(gpus)
        ]
        return True, "\n".join(lines)
    if torch_sees:
        return False, (
            f"torch sees {torch_sees} CUDA device(s) but perfgate detected {len(gpus)}: its detection looks for "
            "/dev/nvidia* or /dev/dxg before asking torch; report this machine's /dev listing"
        )
    return False, "no CUDA device: torch.cuda.is_available() is False here (no driver, or a CPU build of torch)"


def detect(cpuinfo_path: Path = Path("/proc/cpuinfo"), class_override: str | None = None) -> Hardware:
    machine = platform.machine()
    try:
        cpu = parse_cpuinfo(cpuinfo_path.read_text(), machine=machine)
    except OSError:
        cpu = CpuInfo(model=platform.processor() or "unknown", flags=frozenset(), logical_cores=1, machine=machine)
    return Hardware(cpu=cpu, gpus=detect_gpus(), libraries=library_versions(), class_override=class_override)
