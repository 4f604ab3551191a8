"""The CI workflows pass their linters offline (the workflow JSON schema, zizmor, actionlint) and keep
the project's rules: least privilege, actions pinned by commit, GPU jobs only on GPU runners and never
two at once, and every job writing a summary."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.user_project import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(path: Path) -> dict:
    from ruamel.yaml import YAML

    return dict(YAML(typ="safe").load(path.read_text()))


def tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        pytest.skip(f"{name} is not installed (pip install -r requirements/cpu.txt)")
    return found


def test_the_workflows_match_github_s_schema():
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_offline():
    result = subprocess.run([tool("zizmor"), "--offline", str(ROOT / ".github" / "workflows")],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_catches_an_unpinned_action_and_a_credential_left_behind(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\npermissions: write-all\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
    )
    result = subprocess.run([tool("zizmor"), "--offline", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "unpinned" in result.stdout or "artipacked" in result.stdout


def test_actionlint_finds_nothing():
    """actionlint checks expressions, runner labels (`gpu` is declared in
    .github/actionlint.yaml) and job references."""
    result = subprocess.run([tool("actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_an_undeclared_runner_label_and_a_bad_expression(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  x:\n    runs-on: [self-hosted, tpu]\n    steps:\n"
        "      - run: echo ${{ github.no_such_field }}\n"
    )
    result = subprocess.run([tool("actionlint"), "-no-color", str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert 'label "tpu" is unknown' in result.stdout
    assert "no_such_field" in result.stdout


def rule_breaks(workflow: dict) -> list[str]:
    """What a workflow breaks of the project's own rules, as readable lines."""
    broken = []
    if workflow.get("permissions") != {}:
        broken.append("top-level permissions must be {} (each job asks for what it needs)")
    claimed = workflow.get("concurrency", {}).get("group")
    for name, job in workflow["jobs"].items():
        runs_on = job.get("runs-on", [])
        on_gpu = isinstance(runs_on, list) and "gpu" in runs_on
        if on_gpu and "self-hosted" not in runs_on:
            broken.append(f"{name}: gpu jobs run on self-hosted runners")
        if on_gpu and job.get("concurrency", {}).get("group") != "perfgate-gpu":
            broken.append(f"{name}: gpu jobs share the concurrency group perfgate-gpu, at job level")
        if claimed and "github.event" in str(job.get("if", "")):
            broken.append(
                f"{name}: its if filters events, but the workflow claims the concurrency group {claimed} for "
                "every event first: claim it in the job"
            )
        steps = job.get("steps", [])
        for step in steps:
            if "uses" in step and not PINNED.match(step["uses"]):
                broken.append(f"{name}: {step['uses']} is not pinned by commit")
            if re.search(r"\|\|\s*true\b", str(step.get("run", ""))):
                broken.append(f"{name}: '|| true' hides a failure (use if: always() on the steps after it)")
        if steps and not any("GITHUB_STEP_SUMMARY" in str(step.get("run", "")) for step in steps):
            broken.append(f"{name}: writes no job summary")
    return broken


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_each_workflow_keeps_the_project_s_rules(path):
    workflow = load(path)
    exempt = {"lint-workflows"}  # a linter job has nothing to summarise beyond its exit status
    assert [line for line in rule_breaks(workflow) if line.split(":")[0] not in exempt] == []


def test_the_rules_catch_a_workflow_that_breaks_them():
    steps = [{"uses": "actions/checkout@v4"}, {"run": "pytest perf || true"}]
    job = {"runs-on": ["linux", "gpu"], "steps": steps, "if": "github.event.label.name == 'gpu'"}
    workflow = {"permissions": "write-all", "concurrency": {"group": "perfgate-gpu"}, "jobs": {"night": job}}
    assert rule_breaks(workflow) == [
        "top-level permissions must be {} (each job asks for what it needs)",
        "night: gpu jobs run on self-hosted runners",
        "night: gpu jobs share the concurrency group perfgate-gpu, at job level",
        "night: its if filters events, but the workflow claims the concurrency group perfgate-gpu for every "
        "event first: claim it in the job",
        "night: actions/checkout@v4 is not pinned by commit",
        "night: '|| true' hides a failure (use if: always() on the steps after it)",
        "night: writes no job summary",
    ]


def test_only_the_alert_jobs_may_write_issues_and_only_the_fetch_steps_hold_a_token():
    for path in (ROOT / ".github/workflows/nightly.yml", ROOT / ".github/workflows/nightly-cpu.yml"):
        for name, job in load(path)["jobs"].items():
            writes = job.get("permissions", {}).get("issues") == "write"
            assert writes == (name == "alert"), f"{path.name}: {name}"
            assert "GH_TOKEN" not in job.get("env", {}), f"{path.name}: {name} exports the token to every step"
            holders = [step.get("name") for step in job["steps"] if "GH_TOKEN" in step.get("env", {})]
            fetching = [
                "history (earlier scheduled and dispatched nights on the default branch, every class)",
                "history (earlier scheduled and dispatched nights of this class on the default branch)",
            ]
            assert holders in ([], *[[step] for step in fetching], ["alert"]), holders


def test_gpu_workflows_run_only_on_demand_by_label_or_schedule():
    gpu, nightly = load(ROOT / ".github/workflows/gpu.yml"), load(ROOT / ".github/workflows/nightly.yml")
    triggers = gpu.get("on", gpu.get(True))  # YAML 1.1 reads a bare `on` as True
    assert set(triggers) == {"workflow_dispatch", "pull_request"}
    assert triggers["pull_request"] == {"types": ["labeled"]}
    assert "github.event.label.name == 'gpu'" in gpu["jobs"]["gpu"]["if"]
    assert set(nightly.get("on", nightly.get(True))) == {"schedule", "workflow_dispatch"}


def test_a_gpu_job_without_a_visible_gpu_fails_loudly():
    if Path("/dev/nvidia0").exists():
        pytest.skip("this machine has an NVIDIA device: the check would pass")
    result = subprocess.run([str(ROOT / "scripts" / "require_gpu.sh"), sys.executable],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "torch.cuda.is_available() is False" in result.stderr  # perfgate's own detection said so


def test_the_cpu_nightly_shards_fit_an_hour_each_by_the_recorded_durations():
    """fixtures/nightly-durations.json is one nightly run's per-test durations (pytest-split's format); the
    matrix must split them into shards of under 55 minutes each (GitHub's job limit is the hour)."""
    from types import SimpleNamespace

    from pytest_split.algorithms import Algorithms

    job = load(ROOT / ".github/workflows/nightly-cpu.yml")["jobs"]["measure"]
    command = next(step["run"] for step in job["steps"] if "--splits" in str(step.get("run", "")))
    splits = int(re.search(r"--splits (\d+)", command).group(1))
    assert job["strategy"]["matrix"]["shard"] == list(range(1, splits + 1))
    algorithm = re.search(r"--splitting-algorithm (\w+)", command).group(1)
    durations = json.loads((ROOT / "fixtures" / "nightly-durations.json").read_text())
    items = [SimpleNamespace(nodeid=nodeid) for nodeid in durations]
    groups = Algorithms[algorithm].value(splits, items, durations)
    minutes = [group.duration / 60 for group in groups]
    assert max(minutes) < 55, minutes
    assert sum(minutes) == pytest.approx(sum(durations.values()) / 60)


def after_a_cancel(workflow: dict) -> list[str]:
    """Jobs and steps of a nightly that would still run after a manual cancel: only a job summary may."""
    found = []
    for name, job in workflow["jobs"].items():
        if "always()" in str(job.get("if", "")):
            found.append(f"job {name}")
        for step in job.get("steps", []):
            if "always()" in str(step.get("if", "")) and step.get("name") != "job summary":
                found.append(f"{name}: {step.get('name') or step.get('uses')}")
    return found


@pytest.mark.parametrize("name", ["nightly.yml", "nightly-cpu.yml"])
def test_after_a_cancel_a_nightly_compares_stores_and_alerts_nothing(name):
    assert after_a_cancel(load(ROOT / ".github" / "workflows" / name)) == []


def test_the_cancel_rule_catches_a_compare_job_that_runs_always():
    steps = [{"name": "compare", "if": "always() && x"}, {"name": "job summary", "if": "always()"}]
    workflow = {"jobs": {"compare": {"if": "always()", "steps": steps}}}
    assert after_a_cancel(workflow) == ["job compare", "compare: compare"]
