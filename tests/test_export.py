"""Exports: pytest-benchmark's JSON format (read by pytest-benchmark's own CLI and by perfgate's reader) and
JUnit properties."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from perfgate.cli import main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.errors import PerfgateError
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.export import junit_properties, to_pytest_benchmark
from perfgate.records.pytest_benchmark import load_benchmark_run
from perfgate.records.results import RunRecord
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


def two_gates_in_one_test() -> RunRecord:
    """One test that gates batch 1 and batch 8 of a technique, and measures batch 8 twice."""
    cases = []
    for batch_size in (1, 8, 8):
        case = measured_case()
        case.spec = CaseSpec("minilm", "bf16-cast", batch_size=batch_size)
        case.nodeid = "perf/test_sweep.py::test_sweep"
        cases.append(case)
    return RunRecord(fingerprint=record().fingerprint, config={}, cases=cases)


def pytest_benchmark_cli(*arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """pytest-benchmark's own command (its console script, next to this interpreter)."""
    command = Path(sys.executable).parent / "pytest-benchmark"
    return subprocess.run([str(command), *arguments], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


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
    fullname = json.loads(output.read_text())["benchmarks"][0]["fullname"]
    assert fullname == "perf/test_p.py::test_p[bf16-cast]::minilm/bf16-cast/b1/cpu"


def test_the_statistics_are_pytest_benchmarks_own():
    from pytest_benchmark.stats import Stats

    expected = Stats()
    for seconds in SAMPLES:
        expected.update(seconds)
    (benchmark,) = to_pytest_benchmark(record())["benchmarks"]
    assert benchmark["stats"] == {**expected.as_dict(), "iterations": 1}
    assert benchmark["stats"]["outliers"] == "2;0"  # its own 'stddev;iqr' outlier counts


def test_each_gate_of_one_test_has_its_own_fullname():
    fullnames = [benchmark["fullname"] for benchmark in to_pytest_benchmark(two_gates_in_one_test())["benchmarks"]]
    assert fullnames == [
        "perf/test_sweep.py::test_sweep::minilm/bf16-cast/b1/cpu",
        "perf/test_sweep.py::test_sweep::minilm/bf16-cast/b8/cpu",
        "perf/test_sweep.py::test_sweep::minilm/bf16-cast/b8/cpu#2",
    ]


def test_pytest_benchmarks_own_compare_and_list_read_the_export(tmp_path):
    """What a pytest-benchmark user runs: `compare` on the exported file, and `list`/`compare` on the storage
    the export saved into (a file without its 'outliers' field made `compare` raise KeyError)."""
    results = tmp_path / "results.json"
    two_gates_in_one_test().save(results)
    assert main(["export", str(results), "--output", str(tmp_path / "bench.json")]) == 0
    compared = pytest_benchmark_cli("compare", "bench.json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "minilm/bf16-cast/b8/cpu#2" in compared.stdout
    for _ in range(2):
        assert main(["export", str(results), "--storage", str(tmp_path / ".benchmarks")]) == 0
    listed = pytest_benchmark_cli("list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    saved = [Path(line).name for line in listed.stdout.split()]
    assert saved == ["0001_perfgate.json", "0002_perfgate.json"]
    both = pytest_benchmark_cli("compare", "0001", "0002", "--group-by", "name", cwd=tmp_path)
    assert both.returncode == 0, both.stderr[-2000:]
    assert "minilm/bf16-cast/b8/cpu#2 (0001_" in both.stdout
    assert "minilm/bf16-cast/b8/cpu#2 (0002_" in both.stdout


def test_a_run_without_pytest_benchmark_is_told_how_to_export(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytest_benchmark.stats", None)  # as if not installed
    with pytest.raises(PerfgateError, match="pip install pytest-benchmark"):
        to_pytest_benchmark(record())


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
