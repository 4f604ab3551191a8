"""Arms held in live workers, timed block by block from here: one worker per interpreter, the other
environment's site-packages never shadowed by ours, a failing arm one clear error."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from fixtures.environments import overlay_environment
from perfgate.answers.arms import Arm, ArmWorkers, check_interpreter, worker_sys_path
from perfgate.errors import ArmFailed, ConfigError
from perfgate.instruments.comparison import ComparePolicy, compare_blocks

TEXTS = ["The train was late.", "Rain.", "Where did I put my keys?"]


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    path = tmp_path / "labelled.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": i % 3}) + "\n" for i, t in enumerate(TEXTS * 4)))
    return path


def payload(tmp_path: Path, labelled: Path | None) -> dict:
    return {"device": "cpu", "threads": 1, "seq_len": None, "workdir": str(tmp_path / "work"),
            "timed_texts": TEXTS[:1], "eval_texts": TEXTS, "labelled": str(labelled) if labelled else None}  # fmt: skip


def test_two_interpreters_get_a_worker_each_and_are_timed_in_abba_blocks(tmp_path, micro_model_dir, labelled):
    other = overlay_environment(tmp_path / "env")  # a second environment (the same libraries underneath)
    arms = {
        "baseline": Arm("current", "micro", micro_model_dir, "text-classification"),
        "candidate": Arm("candidate", "micro", micro_model_dir, "text-classification", python=str(other)),
    }
    workers = ArmWorkers(arms, Path.cwd(), timeout=120)
    try:
        prepared = workers.prepare(payload(tmp_path, labelled))
        assert len({worker.pid for worker in workers._workers.values()}) == 2
        for arm in ("baseline", "candidate"):
            assert len(prepared[arm]["task_outcomes"]) == 12
            assert len(prepared[arm]["outputs"]) == len(TEXTS)
            assert prepared[arm]["threads"] == 1
        assert prepared["baseline"]["outputs"] == prepared["candidate"]["outputs"]
        result = compare_blocks(workers, time.perf_counter, None, ComparePolicy(min_pairs=4, budget_seconds=1))
        assert len(result.baseline_seconds) == len(result.candidate_seconds) >= 4
        assert all(seconds > 0 for seconds in result.baseline_seconds + result.candidate_seconds)
        assert result.estimate is not None
    finally:
        workers.close()
    assert workers._workers == {}


def test_one_interpreter_holds_both_arms_in_one_worker(tmp_path, micro_model_dir):
    arms = {name: Arm(name, "micro", micro_model_dir, "text-classification") for name in ("baseline", "candidate")}
    workers = ArmWorkers(arms, Path.cwd(), timeout=120)
    try:
        prepared = workers.prepare(payload(tmp_path, None))
        assert prepared["baseline"]["task_outcomes"] is None
        assert len(workers._workers) == 1
    finally:
        workers.close()


def test_an_arm_that_cannot_load_is_one_error_naming_the_arm(tmp_path, micro_model_dir):
    arms = {
        "baseline": Arm("current", "micro", micro_model_dir, "text-classification"),
        "candidate": Arm("candidate", "gone", tmp_path / "gone", "text-classification"),
    }
    workers = ArmWorkers(arms, Path.cwd(), timeout=120)
    try:
        with pytest.raises(ArmFailed, match=r"candidate \(prepare\): error: "):
            workers.prepare(payload(tmp_path, None))
    finally:
        workers.close()


def test_another_environment_imports_perfgate_from_source_and_nothing_of_ours(tmp_path):
    ours = worker_sys_path(sys.executable, tmp_path)
    assert any("site-packages" in path for path in ours)
    theirs = worker_sys_path(str(tmp_path / "python"), tmp_path)
    assert theirs[0] == str(tmp_path)
    assert (Path(theirs[1]) / "perfgate" / "__init__.py").is_file()
    assert not any("site-packages" in path for path in theirs)


def test_a_missing_interpreter_is_named_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"--candidate-python '/no/python' is not an executable interpreter.*venv"):
        check_interpreter("/no/python", "--candidate-python")
    not_executable = tmp_path / "python"
    not_executable.write_text("")
    os.chmod(not_executable, 0o644)
    with pytest.raises(ConfigError):
        check_interpreter(str(not_executable), "--current-python")
