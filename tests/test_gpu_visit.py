"""The GPU visit's plumbing, on CPU: its selection is collected, its estimate fits, it brings back at most
8 files, and recorded wall times replace the stated guesses."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
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


def bare_copy(tmp_path: Path) -> Path:
    """The working tree as the device tool sends it: the files git tracks or would track, no .git."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    copy = tmp_path / "copy"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def without_git(tmp_path: Path) -> dict[str, str]:
    """A PATH with what the visit's shell script uses, and no git."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    return {"PATH": str(bin_dir), "PERFGATE_VISIT_PYTHON": sys.executable, "HOME": str(tmp_path)}


def test_the_dry_run_and_the_visit_s_cpu_path_run_from_a_bare_copy_without_git(visit, tmp_path):
    copy = bare_copy(tmp_path)
    env = without_git(tmp_path)
    assert visit.travelling_bytes(copy) > 0
    dry = subprocess.run([str(copy / "scripts" / "gpu-visit.sh"), "--dry-run"], capture_output=True, text=True,
                         check=False, env=env)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "travels: " in dry.stdout
    out = tmp_path / "out"
    run = subprocess.run([str(copy / "scripts" / "gpu-visit.sh"), "--without-gpu", "--models", "tiny-bert",
                          "--deadline", "300"], capture_output=True, text=True, check=False,
                         env={**env, "OUT": str(out)}, timeout=360)  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    log = (out / "visit.log").read_text()
    assert "no GPU seen (exit 1): going on without one, every case skips" in log
    assert "run 1: exit 0" in log
    assert "run 2: exit 0" in log
    assert len(list(out.iterdir())) <= 8


FAKE_PYTHON = r"""#!/usr/bin/env bash
# Stands in for the image's interpreter: a GPU is seen, models build, and pytest does what $FAKE_RUN says.
case "$*" in
  *"-m perfgate gpus"*) exit "${FAKE_GPUS:-0}" ;;
  *entry_points*) echo False; exit 0 ;;
  *fixtures.models*) exit 0 ;;
esac
report=""
while [ "$#" -gt 0 ]; do [ "$1" = --perfgate-report-dir ] && report=$2; shift; done
mkdir -p "$report"
case_id='"nodeid": "perf/test_precision.py::test_precision_on_a_gpu[bf16-cast]"'
echo "{\"cases\": [{$case_id, \"outcome\": \"measured\", \"wall_seconds\": 21.5}]}" > "$report/results.json"
echo '# summary' > "$report/summary.md"
case "$FAKE_RUN" in
  sleep) exec sleep 1000 ;;
  crash) kill -SEGV $$ ;;
  files) for i in $(seq 40); do echo "worker $i" > "$report/worker-$i.log"; echo x > "$report/extra-$i.json"; done ;;
esac
exit 0
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    path = tmp_path / "python3"
    path.write_text(FAKE_PYTHON)
    path.chmod(0o755)
    return path


def test_a_run_that_sleeps_past_the_deadline_is_ended_and_what_finished_comes_back(visit, fake_python, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    monkeypatch.setenv("FAKE_RUN", "sleep")
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    status = visit.visit(str(fake_python), out, deadline_seconds=25)
    assert time.monotonic() - started < 40
    assert status == 124
    names = sorted(path.name for path in out.iterdir())
    assert names == ["durations.json", "logs.tar.gz", "run1-results.json", "run1-summary.md", "visit.log"]
    log = (out / "visit.log").read_text()
    assert "run 1: timed out (the visit's deadline)" in log
    assert "run 2 skipped:" in log
    durations = json.loads((out / "durations.json").read_text())
    assert durations == {"perf/test_precision.py::test_precision_on_a_gpu[bf16-cast]": 21.5}  # from the results


@pytest.mark.parametrize("behaviour", ["crash", "files"])
def test_a_crashing_or_prolific_run_still_returns_at_most_8_files_with_the_log(visit, fake_python, tmp_path,
                                                                             monkeypatch, behaviour):  # fmt: skip
    monkeypatch.setenv("FAKE_RUN", behaviour)
    out = tmp_path / "out"
    out.mkdir()
    status = visit.visit(str(fake_python), out, deadline_seconds=600)  # time for both runs
    names = sorted(path.name for path in out.iterdir())
    assert len(names) <= 8
    assert "visit.log" in names
    assert "run2-results.json" in names  # the second run had time
    assert (status != 0) == (behaviour == "crash")


def test_no_gpu_seen_ends_the_visit_first_and_packs_its_log(visit, fake_python, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_GPUS", "1")
    out = tmp_path / "out"
    out.mkdir()
    assert visit.visit(str(fake_python), out, deadline_seconds=60) == 3
    assert "no GPU seen (perfgate gpus --require: exit 1): nothing measured" in (out / "visit.log").read_text()
    assert not any(path.name.startswith("run") for path in out.iterdir())
