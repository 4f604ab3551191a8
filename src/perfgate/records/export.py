"""Exports of a run for tools that already exist: pytest-benchmark's JSON (which github-action-benchmark
and Bencher ingest), and per-test properties for JUnit XML (``Bench`` records them; pytest's
``--junitxml`` writes them).

In the pytest-benchmark export each measured case is one benchmark named by its case id, with the
candidate's timed blocks as its rounds (seconds per call) and the same-process comparison with fp32
in ``extra_info``: a dashboard that plots the time sees the absolute latency, and the ratio travels
with it. The statistics are pytest-benchmark's own (``pytest_benchmark.stats.Stats``: its quartile
method and outlier counts), so its ``compare`` and ``list`` read the file as one of their saved runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perfgate.engine.record import CaseResult
from perfgate.errors import PerfgateError
from perfgate.instruments.outcome import Outcome
from perfgate.records.results import RunRecord

__all__ = ["junit_properties", "storage_path", "to_pytest_benchmark"]

INSTALL_HINT = "perfgate export writes pytest-benchmark's format with its statistics: pip install pytest-benchmark"


def to_pytest_benchmark(record: RunRecord) -> dict[str, Any]:
    cpu = record.fingerprint.get("cpu", {})
    machine_info = {
        "node": "perfgate",
        "machine": cpu.get("machine", ""),
        "python_version": record.fingerprint.get("python", ""),
        "cpu": {"brand_raw": cpu.get("model", ""), "count": cpu.get("logical_cores", 0), "flags": cpu.get("flags", [])},
        "perfgate": {"hardware_class": record.fingerprint.get("hardware_class", {})},
    }
    try:
        from pytest_benchmark.stats import Stats
    except ImportError:
        raise PerfgateError(INSTALL_HINT) from None
    measured = [case for case in record.cases if _samples(case)]
    names = _unique_names(measured)
    benchmarks = [
        _benchmark(case, name, Stats())  # type: ignore[no-untyped-call]
        for case, name in zip(measured, names, strict=True)
    ]
    return {
        "machine_info": machine_info,
        "commit_info": {},
        "benchmarks": benchmarks,
        "datetime": record.started,
        "version": "perfgate export (pytest-benchmark 5 format)",
    }


def _samples(case: CaseResult) -> list[float]:
    if case.outcome != Outcome.MEASURED:
        return []
    samples = case.metrics.get("speed", {}).get("samples", {}).get("candidate", [])
    return [float(s) for s in samples]


def _unique_names(cases: list[CaseResult]) -> list[str]:
    """pytest-benchmark keys a benchmark by ``fullname`` and shows its ``name``: each case is named by its
    case id, and a case id measured again in the same test gets ``#2``, ``#3``."""
    names: list[str] = []
    seen: set[tuple[str, str]] = set()
    for case in cases:
        name, repeat = case.spec.case_id, 1
        while (case.nodeid, name) in seen:
            repeat += 1
            name = f"{case.spec.case_id}#{repeat}"
        seen.add((case.nodeid, name))
        names.append(name)
    return names


def _benchmark(case: CaseResult, name: str, stats: Any) -> dict[str, Any]:
    """One case as a benchmark; one test that gates several cases gives each its own ``nodeid::name``."""
    for seconds in _samples(case):
        stats.update(seconds)
    return {
        "group": case.spec.model,
        "name": name,
        "fullname": f"{case.nodeid}::{name}" if case.nodeid else name,
        "params": case.spec.to_dict(),
        "param": case.spec.case_id,
        "extra_info": dict(junit_properties(case)),
        "options": {},
        "stats": {**stats.as_dict(), "iterations": 1},
    }


def storage_path(storage: Path, label: str = "perfgate") -> Path:
    """Where pytest-benchmark's ``--benchmark-save`` would put this machine's next run in ``storage``:
    ``STORAGE/MACHINE/NNNN_LABEL.json``, NNNN one past the highest number saved for that machine."""
    from pytest_benchmark.utils import get_machine_id

    machine_id = str(get_machine_id())  # type: ignore[no-untyped-call]
    numbers = [int(path.name[:4]) for path in (storage / machine_id).glob("[0-9][0-9][0-9][0-9]_*.json")]
    return storage / machine_id / f"{max(numbers, default=0) + 1:04d}_{label}.json"


def junit_properties(case: CaseResult) -> list[tuple[str, str]]:
    """(name, value) pairs that describe a case's result: outcome, verdict and its headline figures."""
    properties = [
        ("perfgate.case", case.spec.case_id),
        ("perfgate.outcome", str(case.outcome)),
        ("perfgate.verdict", str(case.verdict)),
        ("perfgate.hardware_class", case.hardware_class),
    ]
    estimate = case.metrics.get("speed", {}).get("estimate") or {}
    for key in ("speedup", "ci_low", "ci_high"):
        if key in estimate:
            properties.append((f"perfgate.{key}", f"{estimate[key]:.4f}"))
    latency = case.metrics.get("speed", {}).get("latency", {})
    for arm in ("baseline", "candidate"):
        if "p50" in latency.get(arm, {}):
            properties.append((f"perfgate.{arm}_p50_seconds", f"{latency[arm]['p50']:.6g}"))
    figures = {
        "cosine_min": case.metrics.get("fidelity", {}).get("cosine_min"),
        "memory_ratio": case.metrics.get("memory", {}).get("ratio"),
        "size_ratio": case.metrics.get("size", {}).get("ratio"),
    }
    properties += [(f"perfgate.{name}", f"{value:.4f}") for name, value in figures.items() if value is not None]
    return properties
