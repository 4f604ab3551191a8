"""Exports of a run for tools that already exist: pytest-benchmark's JSON (which github-action-benchmark
and Bencher ingest), and per-test properties for JUnit XML (``Bench`` records them; pytest's
``--junitxml`` writes them).

In the pytest-benchmark export each measured case is one benchmark named by its case id, with the
candidate's timed blocks as its rounds (seconds per call) and the same-process comparison with fp32
in ``extra_info``: a dashboard that plots the time sees the absolute latency, and the ratio travels
with it.
"""

from __future__ import annotations

import statistics
from typing import Any

from perfgate.case import CaseResult
from perfgate.outcome import Outcome
from perfgate.results import RunRecord

__all__ = ["junit_properties", "to_pytest_benchmark"]


def to_pytest_benchmark(record: RunRecord) -> dict[str, Any]:
    cpu = record.fingerprint.get("cpu", {})
    machine_info = {
        "node": "perfgate",
        "machine": cpu.get("machine", ""),
        "python_version": record.fingerprint.get("python", ""),
        "cpu": {"brand_raw": cpu.get("model", ""), "count": cpu.get("logical_cores", 0), "flags": cpu.get("flags", [])},
        "perfgate": {"hardware_class": record.fingerprint.get("hardware_class", {})},
    }
    benchmarks = [_benchmark(case) for case in record.cases if _samples(case)]
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


def _benchmark(case: CaseResult) -> dict[str, Any]:
    times = sorted(_samples(case))
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    mean = statistics.fmean(times)
    stats = {
        "min": times[0], "max": times[-1], "mean": mean,
        "stddev": statistics.stdev(times) if len(times) > 1 else 0.0,
        "rounds": len(times), "median": statistics.median(times),
        "q1": quartiles[0], "q3": quartiles[2], "iqr": quartiles[2] - quartiles[0],
        "ops": 1 / mean if mean > 0 else 0.0, "total": sum(times), "iterations": 1,
    }  # fmt: skip
    return {
        "group": case.spec.model,
        "name": case.spec.case_id,
        "fullname": case.nodeid or case.spec.case_id,
        "params": case.spec.to_dict(),
        "param": case.spec.case_id,
        "extra_info": dict(junit_properties(case)),
        "options": {},
        "stats": stats,
    }


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
