"""The GPU visit's plumbing, on CPU: its selection is collected, its estimate fits, it brings back at most
8 files, and recorded wall times replace the stated guesses."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "gpu-visit.sh"


@pytest.fixture(scope="module")
def visit():
    spec = importlib.util.spec_from_file_location("gpu_visit", ROOT / "scripts" / "gpu_visit.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_visit"] = module
    spec.loader.exec_module(module)
    return module


def test_the_dry_run_lists_the_selection_and_an_estimate_within_the_visit(visit):
    result = subprocess.run([str(SCRIPT), "--dry-run"], capture_output=True, text=True, check=False,
                            env={"PATH": "/usr/bin:/bin", "PERFGATE_VISIT_PYTHON": sys.executable})  # fmt: skip
    assert result.returncode == 0, result.stderr
    for case in visit.FIRST_VISIT:
        assert case.nodeid in result.stdout
    for case in visit.NEXT_VISIT:
        assert f"{case.nodeid} ({case.family}" in result.stdout  # said to be left out, not dropped silently
    figures = visit.estimate({})
    assert figures["first_run"] <= visit.RUN_LIMIT_SECONDS
    assert figures["second_run"] <= visit.RUN_LIMIT_SECONDS
    assert figures["total"] <= 8 * 60
    assert "stated guesses" in result.stdout


def test_a_selection_over_its_minutes_is_refused(visit):
    slow = visit.VisitCase("perf/test_x.py::test_y", "slow family", 300, 300, "too long")
    assert visit.over_limits({}, (*visit.FIRST_VISIT, slow))
    assert visit.over_limits({}) == []


def test_every_case_in_both_visits_is_a_gpu_test_that_pytest_collects(visit):
    nodeids = [case.nodeid for case in (*visit.FIRST_VISIT, *visit.NEXT_VISIT)]
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", visit.MARKERS, *nodeids],
                            cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    collected = {line.strip() for line in result.stdout.splitlines() if "::" in line}
    assert collected == set(nodeids)


def test_recorded_wall_times_replace_the_guesses(visit, tmp_path):
    first = visit.FIRST_VISIT[0]
    recorded = tmp_path / "durations.json"
    recorded.write_text(json.dumps({first.nodeid: 3.0}))
    times = visit.recorded_durations(recorded)
    assert visit.estimate(times)["second_run"] == visit.estimate({})["second_run"] - first.again + 3.0
    assert "recorded 3 s" in visit.plan_text(times)
    recorded.write_text("{not json")
    with pytest.raises(SystemExit, match=r"durations\.json: not JSON"):
        visit.recorded_durations(recorded)


def test_a_visit_brings_back_at_most_8_files_with_its_durations(visit, tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    out.mkdir()
    for run in (1, 2):
        (work / f"run{run}").mkdir(parents=True)
        (work / f"run{run}" / "results.json").write_text("{}")
        (work / f"run{run}" / "summary.md").write_text("# summary")
        (work / f"run{run}" / "report.html").write_text("<html>")
        (work / f"run{run}" / "junit.xml").write_text(
            '<testsuites><testsuite><testcase classname="perf.test_precision" '
            f'name="test_precision_on_a_gpu[bf16-cast]" time="{20 + run}"/><testcase classname="perf.test_x" '
            'name="test_skipped" time="0.01"><skipped message="no CUDA device"/></testcase></testsuite></testsuites>'
        )
    (work / "tmp").mkdir()
    (work / "tmp" / "perfgate-worker-1.log").write_text("worker log")
    (out / "visit.log").write_text("log")
    visit.pack(out, work)
    names = sorted(path.name for path in out.iterdir())
    assert len(names) <= 8
    assert names == ["durations.json", "logs.tar.gz", "run1-results.json", "run1-summary.md", "run2-results.json",
                     "run2-summary.md", "visit.log"]  # fmt: skip
    durations = json.loads((out / "durations.json").read_text())
    assert durations == {"perf/test_precision.py::test_precision_on_a_gpu[bf16-cast]": 22.0}
    import tarfile

    with tarfile.open(out / "logs.tar.gz") as archive:
        assert "tmp/perfgate-worker-1.log" in archive.getnames()


def test_a_run_loads_the_plugin_where_perfgate_is_not_installed(visit, tmp_path):
    command = visit.pytest_command("/opt/torch/.venv/bin/python3", 1, tmp_path, load_plugin=True)
    assert command[:5] == ["/opt/torch/.venv/bin/python3", "-m", "pytest", "-p", "perfgate.plugin"]
    assert "--perfgate-gpu-budget-gib" in command
    assert command[command.index("--perfgate-cache-dir") + 1] == str(visit.CACHE_DIR)  # where build_models wrote
    assert "perfgate.plugin" not in visit.pytest_command(sys.executable, 1, tmp_path)
