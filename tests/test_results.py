from __future__ import annotations

import json

import pytest

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.errors import ResultsFileError
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.results import SCHEMA_VERSION, RunRecord, write_atomically
from perfgate.verdicts.thresholds import CheckResult


def record() -> RunRecord:
    case = CaseResult(
        spec=CaseSpec("minilm", "onnxruntime-o2", batch_size=8),
        hardware_class="cpu-avx2",
        outcome=Outcome.MEASURED,
        metrics={
            "speed": {"samples": {"baseline": [0.01, 0.011], "candidate": [0.005, 0.0051]}},
            "fidelity": {"cosine_min": 0.999, "sqnr_db": float("inf")},
        },
        checks=[CheckResult("speed", "pass", "fine")],
        verdict=Verdict.PASS,
    )
    return RunRecord(fingerprint={"hardware_class": {"cpu": "cpu-avx2"}}, config={"budget": "20"}, cases=[case])


def test_a_run_round_trips_through_its_file(tmp_path):
    path = tmp_path / "results.json"
    original = record()
    original.save(path)
    loaded = RunRecord.load(path)
    assert loaded.cases[0].to_dict() == original.cases[0].to_dict()
    assert loaded.fingerprint == original.fingerprint
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_writing_leaves_no_temporary_files_and_replaces_whole(tmp_path):
    path = tmp_path / "out" / "results.json"
    write_atomically(path, "first")
    write_atomically(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    write_atomically(path, "kept")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("perfgate.records.results.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(path, "lost")
    assert path.read_text() == "kept"
    assert len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not readable JSON"),
        ('{"schema_version": 99}', "schema_version=99"),
        ('{"schema_version": 2, "cases": []}', "missing or has a malformed field"),
        ("[]", "schema_version='list'"),
    ],
)
def test_a_corrupt_results_file_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ResultsFileError, match="results file") as raised:
        RunRecord.load(path)
    assert problem in str(raised.value)
    assert str(path) in str(raised.value)
