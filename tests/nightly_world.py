"""Nights of .github/workflows/nightly-cpu.yml, replayed as GitHub Actions runs them, on disk.

Every job and step of the workflow runs as written (tests/actions_replay.py): bash, ``if``s, outputs,
artifacts up and down within a run, real coreutils, the repository's scripts, the real ``perfgate``
commands (through tests/fork_server.py, which only saves their imports), and a fake ``gh``
(tests/fake_gh.py) as strict as the real one, which keeps the runs, their artifacts (retention and
expiry included) and the issues from night to night. What a runner would *measure* is planted: the
measure job's ``pytest`` writes this leg's planted results (its cases at their true speedup on the class
the leg drew, with seeded noise), and the test that ``compare --confirm`` re-runs writes the planted
re-measurement. A ``World`` holds the truth each night was planted from, so the tests can judge what the
loop made of it.
"""

from __future__ import annotations

import json
import os
import random
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.records.results import RunRecord
from tests import fake_gh, fork_server
from tests.actions_replay import Artifacts, Interruptions, RunResult, run_workflow
from tests.user_project import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "nightly-cpu.yml"
AVX2, AVX512 = "cpu-avx2", "cpu-avx512-bf16"
LIBRARIES = {"torch": "2.13.0+cpu", "transformers": "4.57.6", "onnxruntime": "1.32.0"}
SETTINGS = {"budget": "20.0", "min_pairs": "10", "threads": "None", "seed": "0", "precision": "0.03",
            "markexpr": "slow or not slow"}  # fmt: skip


@dataclass(frozen=True)
class PlantedCase:
    model: str
    technique: str
    shard: int
    speedup: dict[str, float]  # per class: the classes differ by more than any band, so mixing them would alert
    slow: bool = False

    @property
    def case_id(self) -> str:
        return f"{self.model}/{self.technique}/b1/cpu"

    @property
    def param(self) -> str:
        return f"{self.model}-{self.technique}"

    @property
    def nodeid(self) -> str:
        return f"perf/test_replay.py::test_case[{self.param}]"


CASES = (
    PlantedCase("minilm", "ort-int8", 1, {AVX2: 3.0, AVX512: 3.6}),
    PlantedCase("minilm", "torch-int8", 1, {AVX2: 1.7, AVX512: 2.4}),
    PlantedCase("minilm", "bf16-cast", 2, {AVX2: 0.45, AVX512: 1.9}),
    PlantedCase("tiny-bert", "onnxruntime-o2", 2, {AVX2: 1.5, AVX512: 1.25}, slow=True),
    PlantedCase("minilm", "train-bf16-autocast", 3, {AVX2: 0.4, AVX512: 1.6}),
    PlantedCase("tiny-bert", "ort-int8", 3, {AVX2: 1.3, AVX512: 1.45}),
)
BY_ID = {case.case_id: case for case in CASES}
SHARDS = 3
REPORT_STEP = "each class's summary and report, against its history"

# The test compare --confirm re-runs: it writes this leg's planted re-measurement as the run's results.
PLANTED_TEST = """
import shutil
from pathlib import Path

import pytest

CASES = {params}


@pytest.mark.parametrize("case", [pytest.param(name, marks=[pytest.mark.slow] if slow else []) for name, slow in CASES])
def test_case(case, request):
    report_dir = Path(request.config.getoption("perfgate_report_dir"))
    shutil.copy(".replay/remeasured.json", report_dir / "results.json")
"""
# The measure job's pytest: this leg's planted results, its job summary, and pytest's exit status.
PLANTED_PYTEST = r"""#!/usr/bin/env bash
report=""
while [ "$#" -gt 0 ]; do
  case "$1" in --perfgate-report-dir) report=$2; shift ;; --perfgate-report-dir=*) report=${1#*=} ;; esac
  shift
done
mkdir -p "$report"
cp .replay/results.json "$report/results.json"
echo "planted shard: $(cat .replay/class)" > "$report/job-summary.md"
exit "$(cat .replay/exit)"
"""


@dataclass
class Plan:
    """What one night is: the class each shard's runner drew, and what happens to it."""

    classes: dict[int, str]
    factors: dict[tuple[str, str], float] = field(default_factory=dict)  # (case, class) -> true change
    blips: set[str] = field(default_factory=set)  # first measurement 30 % slow, the re-measurement not
    crashes: set[str] = field(default_factory=set)  # crash, and crash again when re-run
    accept: tuple[str, ...] = ()  # dispatched by hand with these case ids
    cancel: bool = False  # cancelled by hand while the shards measure
    dead_shard: int | None = None  # its runner is lost before it uploads
    outage: bool = False  # every gh call fails tonight
    expire_night: int | None = None  # tonight, that night's nightly artifact has expired


@dataclass
class Night:
    number: int
    plan: Plan
    run: RunResult
    run_id: int
    measured: dict[str, str]  # case id -> the class that measured it tonight (uploaded shards only)
    issues_before: list[dict[str, Any]]

    @property
    def conclusion(self) -> str:
        return self.run.conclusion


class World:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: ExitStack, seed: int = 0) -> None:
        from ruamel.yaml import YAML

        self.tmp, self.seed = tmp_path, seed
        self.github: fake_gh.FakeGitHub = stack.enter_context(fake_gh.serve(tmp_path))
        bin_dir = tmp_path / "fake-gh-bin"
        (bin_dir / "python3").symlink_to(sys.executable)  # the runner's python3, without a shim's start-up
        self.perfgate = stack.enter_context(fork_server.running(tmp_path / "fork-bin"))
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        for name in ("GH_TOKEN", "GITHUB_TOKEN", "GH_REPO", "PERFGATE_REQUIRE_GATED"):
            monkeypatch.delenv(name, raising=False)
        # The re-run a confirmation starts is a real pytest; plugins the planted test never uses (hypothesis's
        # alone takes most of the start-up) stay out of it.
        unused = ("hypothesispytest", "cacheprovider", "benchmark", "xdist", "split", "timeout")
        monkeypatch.setenv("PYTEST_ADDOPTS", " ".join(f"-p no:{name}" for name in unused))
        # What every runner step sees (GitHub's default variables that perfgate and the scripts read).
        monkeypatch.setenv("GITHUB_ACTOR", "maintainer")
        monkeypatch.setenv("GITHUB_WORKFLOW", "nightly-cpu")
        monkeypatch.setenv("GITHUB_ACTIONS", "true")
        self.workflow = dict(YAML(typ="safe").load(WORKFLOW.read_text()))
        self.nights: list[Night] = []

    def workspace(self, night: int, plan: Plan) -> Any:
        def make(job: str, leg: Any) -> Path:
            workdir = self.tmp / f"night-{night:02d}" / (f"{job}-{leg}" if leg is not None else job)
            (workdir / "perf").mkdir(parents=True)
            (workdir / "scripts").symlink_to(ROOT / "scripts")
            (workdir / ".venv" / "bin").mkdir(parents=True)
            (workdir / ".venv" / "bin" / "perfgate").symlink_to(self.perfgate)
            pytest_plant = workdir / ".venv" / "bin" / "pytest"
            pytest_plant.write_text(PLANTED_PYTEST)
            pytest_plant.chmod(0o755)
            params = [(case.param, case.slow) for case in CASES]
            (workdir / "perf" / "test_replay.py").write_text(PLANTED_TEST.format(params=params))
            if job == "measure":
                self._plant(workdir / ".replay", night, plan, leg)
            return workdir

        return make

    def _record(self, night: int, shard: int, plan: Plan, remeasured: bool) -> RunRecord:
        name = plan.classes[shard]
        # Noise seeded per night, leg and measurement: the legs plant at once, in threads, in any order.
        noise = random.Random(f"{self.seed}-{night}-{shard}-{remeasured}")
        cases = []
        for planted in (c for c in CASES if c.shard == shard):
            speedup = planted.speedup[name] * plan.factors.get((planted.case_id, name), 1.0)
            speedup *= 1 + max(-0.05, min(0.05, noise.gauss(0, 0.02)))
            if planted.case_id in plan.blips and not remeasured:
                speedup *= 0.7
            crashed = planted.case_id in plan.crashes
            result = CaseResult(spec=CaseSpec(planted.model, planted.technique), hardware_class=name,
                                outcome=Outcome.CRASHED if crashed else Outcome.MEASURED, nodeid=planted.nodeid,
                                detail="worker died (SIGSEGV)" if crashed else "")  # fmt: skip
            if not crashed:
                result.metrics = {"speed": {"estimate": {"speedup": speedup, "ci_low": speedup * 0.97,
                                                         "ci_high": speedup * 1.03}},
                                  "fidelity": {"cosine_min": 0.99}, "memory": {"ratio": 0.6}}  # fmt: skip
            cases.append(result)
        fingerprint = {"hardware_class": {"cpu": name, "cuda": "gpu-none"}, "libraries": LIBRARIES}
        day = datetime_of(night, minute=30 if remeasured else 0)
        return RunRecord(fingerprint=fingerprint, config=dict(SETTINGS), cases=cases, started=day)

    def _plant(self, folder: Path, night: int, plan: Plan, shard: int) -> None:
        folder.mkdir()
        measured = self._record(night, shard, plan, remeasured=False)
        measured.save(folder / "results.json")
        self._record(night, shard, plan, remeasured=True).save(folder / "remeasured.json")
        (folder / "class").write_text(plan.classes[shard])
        crashed = any(case.outcome != Outcome.MEASURED for case in measured.cases)
        (folder / "exit").write_text("1" if crashed else "0")

    def night(self, plan: Plan, report: bool = True) -> Night:
        """Run one night; ``report=False`` leaves out the step that only draws each class's HTML report."""
        number = len(self.nights) + 1
        if plan.expire_night is not None:
            expired = self.nights[plan.expire_night - 1]
            self.github.expire(expired.run_id, "perfgate-nightly-cpu")
        issues_before = json.loads(json.dumps(self.github.issues()))
        event = "workflow_dispatch" if plan.accept else "schedule"
        run_id = self.github.add_run("nightly-cpu.yml", "", {}, event=event, status="in_progress")
        self.github.outage = plan.outage
        artifacts = Artifacts(self.tmp / f"artifacts-{number:02d}")
        inputs = {"accept": " ".join(plan.accept), "reason": f"accepted on night {number}"} if plan.accept else {}
        contexts = {
            "github": {"token": "fake-token", "server_url": "https://github.com", "repository": self.github.repo,
                       "run_id": str(run_id)},
            "inputs": inputs, "vars": {"PERFGATE_ALERT_ASSIGNEES": "alice", "PERFGATE_ALERT_MENTIONS": "@org/perf"},
        }  # fmt: skip
        interruptions = Interruptions()
        step = "the nightly selection, one shard of three (balanced on recorded durations)"
        if plan.cancel:
            interruptions.cancel_at = ("measure", step)
        if plan.dead_shard is not None:
            interruptions.die_at.add(("measure", plan.dead_shard, step))
        if not report:
            interruptions.not_replayed.add(REPORT_STEP)
        run = run_workflow(self.workflow, self.workspace(number, plan), contexts, artifacts, interruptions)
        self.github.outage = False
        record = self.github.run(run_id)
        record.update(status="completed", conclusion=run.conclusion)
        for name, folder in artifacts.uploaded.items():
            record["artifacts"][name] = {"path": str(folder), "expired": False}
        measured = {}
        if not plan.cancel:
            for shard, name in plan.classes.items():
                if shard != plan.dead_shard:
                    measured |= {c.case_id: name for c in CASES if c.shard == shard}
        night = Night(number, plan, run, run_id, measured, issues_before)
        self.nights.append(night)
        return night


def datetime_of(night: int, minute: int = 0) -> str:
    day = datetime_day(night)
    return f"{day}T03:{minute:02d}:00+00:00"


def datetime_day(night: int) -> str:
    import datetime

    return (datetime.date(2026, 9, 1) + datetime.timedelta(days=night)).isoformat()
