"""pytest-benchmark's saved runs read as perfgate runs, and compared with a band for absolute times."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perfgate.cli import main
from perfgate.errors import ResultsFileError
from perfgate.records.history import load_history
from perfgate.records.pytest_benchmark import load_benchmark_run
from perfgate.records.regressions import Status, compare_run

MACHINE = {
    "node": "runner", "processor": "x86_64", "machine": "x86_64", "python_version": "3.11.7",
    "cpu": {"brand_raw": "Intel(R) Xeon(R) Processor", "count": 2, "flags": ["avx2", "avx512f", "amx_tile"]},
}  # fmt: skip


def saved_run(directory: Path, number: int, median: float) -> Path:
    """A file as pytest-benchmark --benchmark-autosave writes it (the fields perfgate reads)."""
    stats = {"min": median * 0.9, "max": median * 1.3, "mean": median, "stddev": 0.0, "rounds": 50,
             "median": median, "iqr": median * 0.05, "ops": 1 / median}  # fmt: skip
    data = {
        "machine_info": MACHINE,
        "commit_info": {},
        "benchmarks": [
            {
                "group": None,
                "name": "test_sum[1000]",
                "fullname": "test_b.py::test_sum[1000]",
                "params": {"n": 1000},
                "stats": stats,
            }
        ],
        "datetime": f"2026-11-{10 + number:02d}T02:00:00+00:00",
        "version": "5.3.1",
    }
    path = directory / "Linux-CPython-3.11-64bit" / f"{number:04d}_unversioned.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def benchmarks(tmp_path: Path) -> Path:
    directory = tmp_path / ".benchmarks"
    for number, median in enumerate([1.00e-5, 1.08e-5, 0.95e-5, 1.12e-5, 1.02e-5]):  # cross-process noise
        saved_run(directory, number, median)
    return directory


def test_a_saved_run_reads_as_cases_with_their_median_time_on_the_detected_class(benchmarks):
    run = load_benchmark_run(next(benchmarks.rglob("0000_*.json")))
    (case,) = run.cases
    assert case.metrics["latency"]["p50"] == pytest.approx(1e-5)
    assert case.nodeid == "test_b.py::test_sum[1000]"
    assert run.fingerprint["hardware_class"]["cpu"] == "cpu-amx"


def test_noise_between_processes_is_unchanged_and_a_real_slowdown_is_a_regression(benchmarks, tmp_path):
    history = load_history(benchmarks)
    noisy = load_benchmark_run(saved_run(tmp_path / "now", 9, 1.15e-5))  # +13%: a fixed 5% limit would fail it
    assert {c.status for c in compare_run(noisy, history).cases} == {Status.UNCHANGED}
    slower = load_benchmark_run(saved_run(tmp_path / "later", 10, 1.6e-5))  # +57%
    assert [c.status for c in compare_run(slower, history).cases] == [Status.REGRESSION]


def test_compare_accepts_a_saved_run_on_the_command_line(benchmarks, tmp_path):
    slower = saved_run(tmp_path / "now", 9, 1.6e-5)
    assert main(["compare", str(slower), "--history", str(benchmarks)]) == 1


def test_a_file_that_is_not_a_saved_run_is_named(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ResultsFileError, match="not a pytest-benchmark saved run"):
        load_benchmark_run(path)


def test_a_saved_run_without_a_datetime_still_loads_with_its_history(benchmarks):
    undated = next(benchmarks.rglob("0000_*.json"))
    data = json.loads(undated.read_text())
    del data["datetime"]
    undated.write_text(json.dumps(data))
    history = load_history(benchmarks)
    assert len(history) == 5
    assert history[0][0] == undated  # undated sorts first
