"""What a run knows about this machine before any case: its hardware and class, the GPU placed for this
process, the thresholds that apply here (with the project's hooks), the evaluation sentences, and the
configuration checks that would otherwise fail every case."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from perfgate.engine.placement import GpuPlacement, choose_gpu, visible_gpu_ids
from perfgate.engine.spec import BASELINE, CaseSpec
from perfgate.errors import ConfigError, ThresholdsError
from perfgate.subjects.catalogue import get_technique, technique_names
from perfgate.subjects.hardware import Hardware, detect, known_class
from perfgate.verdicts.thresholds import Thresholds, ThresholdsFile, class_files_dir, load_thresholds

if TYPE_CHECKING:
    import pytest

    from perfgate.engine.config import Settings
    from perfgate.engine.record import CaseResult
    from perfgate.subjects.model import ModelRegistry

__all__ = ["MachineView"]


class MachineView:
    def __init__(self, config: pytest.Config, settings: Settings, models: ModelRegistry) -> None:
        self.config = config
        self.settings = settings
        self.models = models

    def validate(self) -> None:
        """Raise ConfigError for configuration that would otherwise fail every case, or gate nothing."""
        thresholds = self.thresholds
        known = self.known_hardware_classes()
        for path, technique, section in thresholds.class_sections():
            if not known_class(section, known):
                raise ThresholdsError(
                    path,
                    f"techniques.{technique}.{section}",
                    section,
                    f"names no known hardware class, so it would gate nothing; use one of {', '.join(known)} "
                    "(or gpu-smNN), or declare it with the pytest_perfgate_hardware_classes hook",
                )
        for name in self.models.names():
            source = self.models.get(name)
            if source.path is not None:
                source.resolve(self.settings.cache_dir / "models")  # a missing directory raises here
        if self.settings.sentences is not None and not self.settings.sentences.is_file():
            raise ConfigError(
                f"sentences file path={str(self.settings.sentences)!r} does not exist; fix perfgate_sentences "
                "(ini) or --perfgate-sentences"
            )

    def known_hardware_classes(self) -> list[str]:
        declared = [c for found in self.config.hook.pytest_perfgate_hardware_classes() for c in found]
        override = [self.settings.hardware_class] if self.settings.hardware_class else []
        from perfgate.subjects.hardware import DETECTED_CLASSES, FAMILIES

        return sorted({*FAMILIES, *DETECTED_CLASSES, *declared, *override})

    @functools.cached_property
    def hardware(self) -> Hardware:
        return detect(class_override=self.settings.hardware_class)

    @functools.cached_property
    def gpu(self) -> GpuPlacement | None:
        """This process's GPU on a multi-GPU host (``placement.py``); None without CUDA."""
        visible = visible_gpu_ids(os.environ, len(self.hardware.gpus))
        return choose_gpu(os.environ.get("PYTEST_XDIST_WORKER"), visible, self.settings.gpus)

    def placed(self, device: str) -> str:
        """``device`` as this process's hardware list indexes it: ``cuda`` is the GPU placed for it."""
        if device == "cuda" and self.gpu is not None:
            return f"cuda:{self.gpu.position}"
        return device

    def hardware_class(self, device: str) -> str:
        device = self.placed(device)
        chosen = self.config.hook.pytest_perfgate_hardware_class(hardware=self.hardware, device=device)
        return str(chosen) if chosen else self.hardware.hardware_class(device)

    @functools.cached_property
    def thresholds(self) -> ThresholdsFile:
        return load_thresholds(self.settings.thresholds, technique_names())

    def capability(self, spec: CaseSpec) -> str | None:
        """The native-math capability section a precision technique is judged under, or None."""
        dtype = get_technique(spec.technique).native_math
        return self.hardware.capability(dtype, self.placed(spec.device)) if dtype else None

    def thresholds_for(self, spec: CaseSpec) -> Thresholds:
        technique, hardware_class = spec.technique, self.hardware_class(spec.device)
        if spec.baseline != BASELINE:  # thresholds bound a technique against fp32 eager, not against another
            return Thresholds(technique, hardware_class, gated=False)
        found = self.thresholds.lookup(technique, hardware_class, spec.model, spec.batch_size, self.capability(spec))
        override = self.config.hook.pytest_perfgate_thresholds(
            technique=technique, hardware_class=hardware_class, thresholds=found
        )
        return override or found

    def capabilities(self, device: str = "cpu") -> list[str]:
        """The capability sections this machine is judged under, read from its CPU flags (or GPU)."""
        return [self.hardware.capability(dtype, self.placed(device)) for dtype in ("bf16", "fp16", "int8")]

    def coverage(self) -> str:
        """Which thresholds sections apply on this machine's CPU class, for the report header."""
        hardware_class = self.hardware_class("cpu")
        counts = dict.fromkeys((hardware_class, "cpu", *self.capabilities()), 0)
        for _, _, section in self.thresholds.class_sections():
            if section in counts:
                counts[section] += 1
        described = "; ".join(f"{level}: {count} techniques" for level, count in counts.items())
        note = "" if counts[hardware_class] else (
            f" ({hardware_class} has no sections: fidelity and sizes from 'default' judge, speed and memory "
            "are recorded UNGATED where no family or capability section applies)"
        )  # fmt: skip
        return f"thresholds sections for this CPU (capabilities from its flags) — {described}{note}"

    def ungated_message(self, result: CaseResult) -> str:
        """Why --perfgate-require-gated fails an UNGATED case, and how to gate it."""
        spec, hardware_class = result.spec, result.hardware_class
        files = ", ".join(str(p) for p in self.settings.thresholds)
        target = class_files_dir(self._ini_thresholds(), self.config.rootpath) / f"{hardware_class}.toml"
        return (
            f"{result.context}: {', '.join(sorted(set(result.ungated)))} measured with no threshold on "
            f'{hardware_class}, and --perfgate-require-gated is on: no section [techniques."{spec.technique}".'
            f"{hardware_class}] (nor its family or capability) in {files}. Gate this runner: store a few nightly "
            f"runs (perfgate store), then `perfgate thresholds derive --history HISTORY --class {hardware_class} "
            f"--output {target}`, review the diff and commit it"
        )

    def _ini_thresholds(self) -> Path | None:
        ini = self.config.getini("perfgate_thresholds")
        return self.config.rootpath / str(ini) if ini else None

    @functools.cached_property
    def sentences(self) -> list[str]:
        path = self.settings.sentences
        if path is None:
            raise ConfigError(
                "no evaluation sentences: set perfgate_sentences (ini) or --perfgate-sentences to a text file"
            )
        try:
            lines = [line.strip() for line in path.read_text().splitlines()]
        except OSError as error:
            raise ConfigError(
                f"sentences file {str(path)!r} cannot be read ({error}); fix perfgate_sentences"
            ) from None
        sentences = [line for line in lines if line and not line.startswith("#")]
        if not sentences:
            raise ConfigError(f"sentences file {str(path)!r} holds no sentences")
        return sentences
