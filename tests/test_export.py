"""Exports: pytest-benchmark's JSON format (read back by perfgate's own reader) and JUnit properties."""

from __future__ import annotations

import json
import statistics
import xml.etree.ElementTree as ET

import pytest

from perfgate.case import CaseResult
from perfgate.cli import main
from perfgate.export import junit_properties, to_pytest_benchmark
from perfgate.outcome import Outcome, Verdict
from perfgate.pytest_benchmark import load_benchmark_run
from perfgate.results import RunRecord
from perfgate.spec import CaseSpec
from tests.user_project import micro_run

SAMPLES = [0.010, 0.011, 0.009, 0.012, 0.010]


def measured_case() -> CaseResult:
    case = CaseResult(spec=CaseSpec("minilm", "bf16-cast"), hardware_class="cpu-amx", outcome=Outcome.MEASURED,
                      nodeid="perf/test_p.py::test_p[bf16-cast]", verdict=Verdict.PASS)  # fmt: skip
    case.metrics = {
        "speed": {
            "samples": {"baseline": [s * 1.5 for s in SAMPLES], "candidate": SAMPLES},
            "estimate": {"speedup": 1.5, "ci_low": 1.45, "ci_high": 1.55},
            "latency": {"baseline": {"p50": 0.015}, "candidate": {"p50": 0.010}},
        },
        "fidelity": {"cosine_min": 0.9999},
    }
    return case


def record() -> RunRecord:
    fingerprint = {"hardware_class": {"cpu": "cpu-amx"}, "cpu": {"model": "Xeon", "logical_cores": 2,
                   "flags": ["avx2", "avx512f", "amx_tile"]}}  # fmt: skip
    crashed = CaseResult(spec=CaseSpec("minilm", "planted"), hardware_class="cpu-amx", outcome=Outcome.CRASHED)
    return RunRecord(fingerprint=fingerprint, config={}, cases=[measured_case(), crashed])


def test_the_pytest_benchmark_export_carries_the_candidate_rounds_and_the_ratio(tmp_path):
    data = to_pytest_benchmark(record())
    (benchmark,) = data["benchmarks"]  # a crashed case has no timing to export
    assert benchmark["name"] == "minilm/bf16-cast/b1/cpu"
    assert benchmark["stats"]["median"] == pytest.approx(statistics.median(SAMPLES))
    assert benchmark["stats"]["rounds"] == len(SAMPLES)
    assert benchmark["extra_info"]["perfgate.speedup"] == "1.5000"
    path = tmp_path / "export.json"
    path.write_text(json.dumps(data))
    back = load_benchmark_run(path)  # what a pytest-benchmark reader sees
    assert back.cases[0].metrics["latency"]["p50"] == pytest.approx(0.010)
    assert back.fingerprint["hardware_class"]["cpu"] == "cpu-amx"


def test_the_export_command_writes_the_file(tmp_path):
    results, output = tmp_path / "results.json", tmp_path / "bench.json"
    record().save(results)
    assert main(["export", str(results), "--output", str(output)]) == 0
    assert json.loads(output.read_text())["benchmarks"][0]["fullname"] == "perf/test_p.py::test_p[bf16-cast]"


def test_junit_properties_name_the_verdict_and_the_figures():
    properties = dict(junit_properties(measured_case()))
    assert properties["perfgate.verdict"] == "pass"
    assert properties["perfgate.ci_low"] == "1.4500"
    assert properties["perfgate.cosine_min"] == "0.9999"
    assert "perfgate.memory_ratio" not in properties  # not measured: not invented


def test_junit_xml_carries_each_case_s_figures(project, micro_model_dir):
    project.makepyfile(
        """
        def test_int8(perfgate):
            perfgate.measure("micro", "torch-dynamic-int8-per-channel", batch_size=1)
        """
    )
    result = project.runpytest(*micro_run(micro_model_dir), "--perfgate-memory=off", "--junitxml=junit.xml")
    assert result.ret == 0
    tree = ET.parse(project.path / "junit.xml")
    found = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert found["perfgate.case"] == "micro/torch-dynamic-int8-per-channel/b1/cpu"
    assert float(found["perfgate.speedup"]) > 0
