"""A memory cgroup per worker: finding this process's group (v1 and v2 layouts, on planted trees), the
reasons given where none can be made, and a real worker killed inside its group recorded as ``oom``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from perfgate.engine.launcher import JobReply
from perfgate.instruments.cgroup import CgroupUnavailable, MemoryCgroup, SubtreeDelegation
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


def v2_group(tmp_path: Path, procs: list[int], subtree: str = "") -> tuple[Path, Path]:
    group = tmp_path / "session"
    group.mkdir()
    (group / "cgroup.controllers").write_text("cpu io memory pids\n")
    (group / "cgroup.subtree_control").write_text(subtree)
    (group / "cgroup.procs").write_text("".join(f"{pid}\n" for pid in procs))
    return group, plant_tree(tmp_path, ["0::/session"])


def test_v2_enables_memory_for_its_children_from_a_leaf_and_undoes_it(tmp_path):
    """A planted v2 tree whose group holds only this process: it moves into a leaf of its own, enables the
    controller for the children, makes the capped group; at exit all of it is undone."""
    group, proc_self = v2_group(tmp_path, [os.getpid()])
    child = MemoryCgroup.create(tmp_path, proc_self)
    delegation = SubtreeDelegation.active
    try:
        assert child.version == 2
        assert child.path.parent == group
        assert delegation is not None
        assert (group / "cgroup.subtree_control").read_text() == "+memory"
        assert (delegation.leaf / "cgroup.procs").read_text() == str(os.getpid())
        child.limit(123)
        assert (child.path / "memory.max").read_text() == "123"
        assert MemoryCgroup.create(tmp_path, proc_self).path != child.path  # one delegation, many groups
    finally:  # a real group's interface files vanish with it; a planted one's must go first
        for made in [*group.glob("perfgate-[0-9]*"), *group.glob("perfgate-home-*")]:
            for file in made.iterdir():
                file.unlink()
        for made in group.glob("perfgate-[0-9]*"):
            made.rmdir()
        assert delegation is not None
        delegation.undo()
    assert (group / "cgroup.subtree_control").read_text() == "-memory"
    assert (group / "cgroup.procs").read_text() == str(os.getpid())
    assert not delegation.leaf.exists()
    assert SubtreeDelegation.active is None


def test_v2_leaves_a_group_holding_other_processes_alone_and_says_why(tmp_path):
    group, proc_self = v2_group(tmp_path, [os.getpid(), 1])  # PID 1 is nobody's child here
    with pytest.raises(CgroupUnavailable, match=r"its 1 other process\(es\) moved out"):
        MemoryCgroup.create(tmp_path, proc_self)
    assert (group / "cgroup.subtree_control").read_text() == ""
    assert sorted(p.name for p in group.iterdir()) == ["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control"]


def test_v2_with_the_controller_already_delegated_moves_nothing(tmp_path):
    group, proc_self = v2_group(tmp_path, [1], subtree="memory")
    child = MemoryCgroup.create(tmp_path, proc_self)
    assert SubtreeDelegation.active is None
    assert [p.name for p in group.glob("perfgate-*")] == [child.path.name]


def test_v2_without_the_memory_controller_says_so(tmp_path):
    group, proc_self = v2_group(tmp_path, [os.getpid()])
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
    from perfgate.engine.scenarios.largest_batch import BatchFits

    payload = {
        "model": {"name": "micro", "task": "text-classification", "location": str(micro_model_dir), "device": "cpu"},
        "technique": technique, "workdir": str(tmp_path), "threads": 1, "timed_texts": ["The train was late."],
        "headroom_bytes": 0, "batch_size": batch_size, "budget_bytes": budget,
    }  # fmt: skip
    return submit_in_cgroup(tmp_path, BatchFits(), payload)


def test_a_worker_over_its_cgroup_budget_is_killed_inside_it_and_recorded_as_oom(tmp_path, micro_model_dir):
    from perfgate.instruments.outcome import Outcome
    from perfgate.subjects.catalogue import import_path

    small = submit_batch_fits(tmp_path, micro_model_dir, import_path("fp32-eager"), 2, 128 * 2**20)
    big = submit_batch_fits(tmp_path, micro_model_dir, import_path("fp32-eager"), 4096, 128 * 2**20)
    assert small.outcome == Outcome.MEASURED, small.detail
    figures = small.data["cgroup"]
    assert 0 < figures["peak"] - figures["base"] <= 128 * 2**20, "the try's peak is charged and within the budget"
    assert big.outcome == Outcome.OOM, (big.outcome, big.detail)
    assert "killed by the kernel's OOM killer inside its memory cgroup" in big.detail


def test_a_crash_inside_a_cgroup_that_is_not_an_oom_kill_stays_a_crash(tmp_path, micro_model_dir):
    from perfgate.instruments.outcome import Outcome

    aborted = submit_batch_fits(tmp_path, micro_model_dir, "tests.planted:Aborts", 2, 128 * 2**20)
    assert aborted.outcome == Outcome.CRASHED, (aborted.outcome, aborted.detail)
    assert "SIGABRT" in aborted.detail
