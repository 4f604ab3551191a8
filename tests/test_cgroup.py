"""A memory cgroup per worker: finding this process's group (v1 and v2 layouts, on planted trees), the
reasons given where none can be made, and a real worker killed inside its group recorded as ``oom``."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfgate.cgroup import CgroupUnavailable, MemoryCgroup
from perfgate.launcher import JobReply
from tests.capped import real_cgroup, submit_in_cgroup


def plant_tree(root: Path, proc_lines: list[str]) -> Path:
    proc_self = root / "proc-self-cgroup"
    proc_self.write_text("\n".join(proc_lines) + "\n")
    return proc_self


def test_v1_finds_the_memory_hierarchys_group_and_says_when_children_get_no_controller(tmp_path):
    (tmp_path / "memory" / "jobs" / "42").mkdir(parents=True)
    proc_self = plant_tree(tmp_path, ["5:devices:/", "4:memory:/jobs/42", "0::/"])
    with pytest.raises(CgroupUnavailable, match=r"jobs/42 gives its children no memory controller"):
        MemoryCgroup.create(tmp_path, proc_self)  # a plain directory: its child has no memory files
    assert list((tmp_path / "memory" / "jobs" / "42").iterdir()) == [], "the half-made group is removed"


def test_v2_finds_the_unified_group_when_it_has_the_memory_controller(tmp_path):
    group = tmp_path / "session"
    group.mkdir()
    (group / "cgroup.controllers").write_text("cpu io memory pids\n")
    proc_self = plant_tree(tmp_path, ["0::/session"])
    with pytest.raises(CgroupUnavailable, match="session gives its children no memory controller"):
        MemoryCgroup.create(tmp_path, proc_self)
    (group / "cgroup.controllers").write_text("cpu io pids\n")
    with pytest.raises(CgroupUnavailable, match="no memory cgroup controller is mounted"):
        MemoryCgroup.create(tmp_path, proc_self)


def test_no_proc_file_means_no_cgroup_with_the_reason(tmp_path):
    with pytest.raises(CgroupUnavailable, match=r"cannot read .*memory cgroups need Linux"):
        MemoryCgroup.create(tmp_path, tmp_path / "missing")


@pytest.mark.parametrize(
    ("version", "name", "text", "kills"),
    [
        (1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", 2),
        (1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", 0),
        (2, "memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n", 1),
        (2, "memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 0\n", 0),
    ],
)
def test_the_oom_kill_count_is_read_from_each_versions_file(tmp_path, version, name, text, kills):
    (tmp_path / name).write_text(text)
    assert MemoryCgroup(tmp_path, version).oom_kills() == kills


def test_old_v1_kernels_without_an_oom_kill_line_fall_back_to_the_failure_count(tmp_path):
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    (tmp_path / "memory.failcnt").write_text("3\n")
    assert MemoryCgroup(tmp_path, 1).oom_kills() == 3


def test_a_real_group_takes_a_limit_and_reports_usage_and_is_removed():
    group = real_cgroup()
    try:
        group.limit(256 * 2**20)
        assert group.usage() == 0, "nothing is charged to an empty group"
        assert group.oom_kills() == 0
    finally:
        group.remove()
    assert not group.path.exists()


def submit_batch_fits(tmp_path: Path, micro_model_dir: Path, technique: str, batch_size: int, budget: int) -> JobReply:
    from perfgate.scenarios.largest_batch import BatchFits

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": technique, "workdir": str(tmp_path), "threads": 1, "timed_texts": ["The train was late."],
        "headroom_bytes": 0, "batch_size": batch_size, "budget_bytes": budget,
    }  # fmt: skip
    return submit_in_cgroup(tmp_path, BatchFits(), payload)


def test_a_worker_over_its_cgroup_budget_is_killed_inside_it_and_recorded_as_oom(tmp_path, micro_model_dir):
    from perfgate.outcome import Outcome
    from perfgate.technique import import_path

    small = submit_batch_fits(tmp_path, micro_model_dir, import_path("fp32-eager"), 2, 128 * 2**20)
    big = submit_batch_fits(tmp_path, micro_model_dir, import_path("fp32-eager"), 4096, 128 * 2**20)
    assert small.outcome == Outcome.MEASURED, small.detail
    figures = small.data["cgroup"]
    assert 0 < figures["peak"] - figures["base"] <= 128 * 2**20, "the try's peak is charged and within the budget"
    assert big.outcome == Outcome.OOM, (big.outcome, big.detail)
    assert "killed by the kernel's OOM killer inside its memory cgroup" in big.detail


def test_a_crash_inside_a_cgroup_that_is_not_an_oom_kill_stays_a_crash(tmp_path, micro_model_dir):
    from perfgate.outcome import Outcome

    aborted = submit_batch_fits(tmp_path, micro_model_dir, "tests.planted:Aborts", 2, 128 * 2**20)
    assert aborted.outcome == Outcome.CRASHED, (aborted.outcome, aborted.detail)
    assert "SIGABRT" in aborted.detail
