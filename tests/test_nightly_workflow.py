"""Five nights of .github/workflows/nightly-cpu.yml as GitHub Actions runs them, on disk.

The compare and alert jobs' own steps run in order (tests/actions_replay.py): the shards' artifacts are
joined, earlier nights are fetched by scripts/fetch_history.sh from a fake GitHub (tests/fake_gh.py,
which refuses a label the repository lacks), compared with --confirm --annotate, reported, uploaded, and
alerted on by scripts/alert.py. What the measure job and the confirming re-run would measure is planted:
results files with one night's noise, night 3's and its re-measurement with one case 20 % slower.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from perfgate.results import RunRecord
from tests import fake_gh as fake_github
from tests.actions_replay import Artifacts, JobResult, condition, run_job
from tests.test_history import FINGERPRINT, case
from tests.user_project import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "nightly-cpu.yml"
REGRESSED = "minilm/ort-int8/b1/cpu"
# Stands in for the measured test when compare --confirm re-runs a suspect: the planted re-measurement.
PLANTED_TEST = """
import os
import shutil
from pathlib import Path

import pytest


@pytest.mark.parametrize("technique", ["ort-int8", "torch-int8"])
def test_case(technique, request):
    report_dir = Path(request.config.getoption("perfgate_report_dir"))
    shutil.copy(os.environ["REPLAY_REMEASUREMENT"], report_dir / "results.json")
"""
SETTINGS = {"budget": "20.0", "min_pairs": "10", "threads": "None", "seed": "0", "precision": "0.03"}


def measured(night: int, ort_speedup: float, torch_speedup: float) -> list[RunRecord]:
    """The two shards of one night: ort-int8 measured on the first runner, torch-int8 on the second."""
    shards = []
    for technique, speedup in (("ort-int8", ort_speedup), ("torch-int8", torch_speedup)):
        result = case(technique, speedup)
        result.nodeid = f"perf/test_replay.py::test_case[{technique}]"
        shards.append(RunRecord(fingerprint=FINGERPRINT, config=dict(SETTINGS), cases=[result],
                                started=f"2026-11-{10 + night:02d}T03:00:00+00:00"))  # fmt: skip
    return shards


def load_workflow() -> dict:
    from ruamel.yaml import YAML

    return dict(YAML(typ="safe").load(WORKFLOW.read_text()))


class Nights:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        perfgate = Path(sys.prefix) / "bin" / "perfgate"
        if not perfgate.exists():
            pytest.skip(f"perfgate's console script is not installed beside this interpreter ({perfgate})")
        self.tmp, self.monkeypatch = tmp_path, monkeypatch
        self.github = fake_github.install(tmp_path, monkeypatch)
        self.workflow = load_workflow()
        self.number = 0

    def checkout(self, name: str) -> Path:
        """A runner's fresh workspace: the repository's scripts, the installed environment, nothing else."""
        workdir = self.tmp / name
        (workdir / "perf").mkdir(parents=True)
        (workdir / "scripts").symlink_to(ROOT / "scripts")
        (workdir / ".venv").symlink_to(Path(sys.prefix))
        (workdir / "perf" / "test_replay.py").write_text(PLANTED_TEST)
        return workdir

    def night(self, shards: list[RunRecord], remeasured: RunRecord, inputs: dict | None = None) -> dict:
        self.number += 1
        artifacts = Artifacts(self.tmp / f"artifacts-{self.number}")
        for index, shard in enumerate(shards, 1):
            folder = self.tmp / f"measured-{self.number}-{index}"
            shard.save(folder / "results.json")
            artifacts.upload(f"perfgate-nightly-cpu-shard-{index}", folder)
        remeasurement = self.tmp / f"remeasured-{self.number}.json"
        remeasured.save(remeasurement)
        self.monkeypatch.setenv("REPLAY_REMEASUREMENT", str(remeasurement))
        contexts = {
            "github": {"token": "fake-token", "server_url": "https://github.com", "repository": "owner/repo",
                       "run_id": str(self.number)},
            "inputs": inputs or {}, "vars": {}, "matrix": {},
        }  # fmt: skip
        jobs = self.workflow["jobs"]
        compare = run_job(jobs["compare"], self.checkout(f"night-{self.number}-compare"), contexts, artifacts)
        contexts["needs"] = {"compare": {"outputs": compare.outputs, "result": compare.result}}
        alert: JobResult | None = None
        alert_workdir = self.checkout(f"night-{self.number}-alert")
        if condition(jobs["alert"]["if"], contexts, alert_workdir, failed=False):
            alert = run_job(jobs["alert"], alert_workdir, contexts, artifacts)
        failed = "failure" in {compare.result, alert.result if alert else "success"}
        self.github.add_run("nightly-cpu.yml", "failure" if failed else "success", artifacts.uploaded)
        return {"compare": compare, "alert": alert, "artifacts": artifacts}


def statuses(night: dict) -> dict[str, str]:
    compared = json.loads((night["artifacts"].uploaded["perfgate-nightly-cpu-amx"] / "compare.json").read_text())
    return {entry["case_id"]: entry["status"] for entry in compared["cases"]}


def test_a_planted_regression_alerts_once_and_an_acceptance_silences_it(tmp_path, monkeypatch):
    nights = Nights(tmp_path, monkeypatch)
    first = nights.night(measured(1, 3.50, 2.20), measured(1, 3.50, 2.20)[0])
    assert first["compare"].result == "success", first["compare"].log
    assert set(statuses(first).values()) == {"new"}
    second = nights.night(measured(2, 3.62, 2.25), measured(2, 3.62, 2.25)[0])
    assert set(statuses(second).values()) == {"unchanged"}, second["compare"].log
    assert nights.github.issues() == []

    third = nights.night(measured(3, 2.85, 2.22), measured(3, 2.88, 2.22)[0])  # ort-int8 20 % slower
    assert statuses(third) == {REGRESSED: "regression", "minilm/torch-int8/b1/cpu": "unchanged"}
    assert third["compare"].result == "failure"  # the night is red, after compare
    assert third["alert"] is not None
    assert third["alert"].result == "success", third["alert"].log
    (issue,) = nights.github.issues()
    assert issue["title"] == "perfgate: confirmed regression in ort-int8"
    assert issue["labels"] == ["perfgate-regression"]  # created first: the fake refuses a missing label
    assert "confirmed" in json.loads((third["artifacts"].uploaded["perfgate-nightly-cpu-amx"] / "compare.json")
                                     .read_text())["cases"][0]["detail"]  # fmt: skip

    fourth = nights.night(
        measured(4, 2.90, 2.21), measured(4, 2.90, 2.21)[0],
        inputs={"accept": REGRESSED, "reason": "ORT 1.33 trades int8 speed for accuracy"},
    )  # fmt: skip
    assert statuses(fourth)[REGRESSED] == "unchanged", fourth["compare"].log
    (issue,) = nights.github.issues()  # no second issue
    assert issue["state"] == "closed"
    assert "ORT 1.33 trades int8 speed for accuracy" in issue["comments"][-1]

    fifth = nights.night(measured(5, 2.87, 2.24), measured(5, 2.87, 2.24)[0])  # scheduled: no inputs
    assert set(statuses(fifth).values()) == {"unchanged"}, fifth["compare"].log
    assert fifth["compare"].result == "success"
    assert len(nights.github.issues()) == 1
    assert "nothing to do" in fifth["alert"].summary

    # The history night 5 read, laid out as fetch_history.sh lays it: one folder per run, whole artifacts.
    fetched = sorted(p.relative_to(tmp_path / "night-5-compare" / "history").as_posix()
                     for p in (tmp_path / "night-5-compare" / "history").rglob("*") if p.is_file())  # fmt: skip
    for run in ("1000", "1001", "1002", "1003"):
        for name in ("compare.json", "summary.md", "report.html", "results.json"):
            assert f"{run}/{name}" in fetched
    assert any(name.startswith("1003/accept-") for name in fetched)


def test_shards_of_two_hardware_classes_stop_the_night_before_any_comparison(tmp_path, monkeypatch):
    nights = Nights(tmp_path, monkeypatch)
    shards = measured(1, 3.5, 2.2)
    shards[1].fingerprint = {**FINGERPRINT, "hardware_class": {"cpu": "cpu-avx2", "cuda": "gpu-none"}}
    night = nights.night(shards, shards[0])
    assert night["compare"].result == "failure"
    assert any("does not belong with" in line for line in night["compare"].log)
    assert night["alert"] is None
