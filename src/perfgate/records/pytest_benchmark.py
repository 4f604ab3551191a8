"""Reading pytest-benchmark's saved runs (``.benchmarks/<machine>/NNNN_*.json``) as perfgate runs, so an
existing pytest-benchmark suite gets the same noise-aware comparison (``perfgate compare``).

A benchmark has no same-process A/B: what it offers is an absolute time, which moves ±15-20% between
processes on a shared runner. Each benchmark becomes a case whose ``latency`` figure is its median time;
``regressions.TRACKED`` compares it with a band of at least 20% (and wider where the history is noisier),
instead of pytest-benchmark's fixed percentage against one stored run. The hardware class comes from
the CPU flags pytest-benchmark records (py-cpuinfo), so runs of different machines stay incomparable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.errors import ResultsFileError
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.results import RunRecord
from perfgate.subjects.hardware import CpuInfo, cpu_class

__all__ = ["is_benchmark_run", "load_benchmark_run"]


def is_benchmark_run(data: Any) -> bool:
    return isinstance(data, dict) and "benchmarks" in data and "machine_info" in data


def load_benchmark_run(path: Path) -> RunRecord:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsFileError(path, f"is not readable JSON ({error})") from None
    if not is_benchmark_run(data):
        raise ResultsFileError(path, "is not a pytest-benchmark saved run (no 'benchmarks' and 'machine_info')")
    machine = data["machine_info"]
    cpu = machine.get("cpu", {})
    info = CpuInfo(
        model=str(cpu.get("brand_raw", machine.get("processor", "unknown"))),
        flags=frozenset(cpu.get("flags", [])),
        logical_cores=int(cpu.get("count", 1) or 1),
        machine=str(machine.get("machine", "x86_64")),
    )
    fingerprint = {
        "hardware_class": {"cpu": cpu_class(info), "cuda": "not recorded"},
        "cpu": {"model": info.model, "logical_cores": info.logical_cores},
        "libraries": {"python": str(machine.get("python_version", ""))},
        "source": f"pytest-benchmark {data.get('version', '')}",
    }
    try:
        cases = [_case(benchmark) for benchmark in data["benchmarks"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ResultsFileError(path, f"has a malformed benchmark entry ({error})") from None
    return RunRecord(fingerprint=fingerprint, config={}, cases=cases, started=str(data.get("datetime", "")))


def _case(benchmark: dict[str, Any]) -> CaseResult:
    stats = benchmark["stats"]
    group = benchmark.get("group") or "pytest-benchmark"
    case = CaseResult(
        spec=CaseSpec(model=str(group), technique=str(benchmark["name"])),
        hardware_class="",
        outcome=Outcome.MEASURED,
        nodeid=str(benchmark.get("fullname", "")),
        verdict=Verdict.RECORDED,
    )
    case.metrics["latency"] = {
        "p50": float(stats["median"]),
        "rounds": int(stats["rounds"]),
        "iqr": float(stats["iqr"]),
    }
    return case
