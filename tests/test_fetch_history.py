"""scripts/fetch_history.sh against the strict fake gh: which runs are history, what it says when it
fetches nothing, and gh's own words when it cannot fetch."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fake_gh as fake_github
from tests.fake_gh import FakeGitHub
from tests.user_project import ROOT

ARTIFACT = "perfgate-nightly-cpu"


@pytest.fixture
def github(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    yield from fake_github.install(tmp_path, monkeypatch)


def night(tmp_path: Path, label: str) -> dict[str, Path]:
    folder = tmp_path / "uploads" / label
    (folder / "cpu-avx2").mkdir(parents=True)
    (folder / "cpu-avx2" / "results.json").write_text(f'{{"night": "{label}"}}')
    return {ARTIFACT: folder}


def fetch(tmp_path: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / "scripts" / "fetch_history.sh"), str(tmp_path / "history"), ARTIFACT, *extra]
    return subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ, **env})


def fetched(tmp_path: Path) -> list[str]:
    return sorted(p.parent.parent.name for p in (tmp_path / "history").glob("*/cpu-avx2/results.json"))


def test_only_finished_scheduled_and_dispatched_runs_of_the_default_branch_are_history(github, tmp_path):
    workflow = "nightly-cpu.yml"
    kept = [github.add_run(workflow, "success", night(tmp_path, "a")),
            github.add_run(workflow, "failure", night(tmp_path, "b"), event="workflow_dispatch")]  # fmt: skip
    github.add_run(workflow, "success", night(tmp_path, "fork"), event="pull_request")  # a fork's own main
    github.add_run(workflow, "success", night(tmp_path, "feature"), branch="feature", event="workflow_dispatch")
    github.add_run(workflow, "cancelled", night(tmp_path, "cancelled"))
    github.add_run(workflow, "", {}, status="in_progress")  # tonight's own run
    result = fetch(tmp_path, "10", workflow)
    assert result.returncode == 0, result.stderr
    assert fetched(tmp_path) == sorted(map(str, kept))
    assert (tmp_path / "history" / "fetch.txt").read_text() == (
        f"fetched 2 run(s) of {workflow} on main (schedule workflow_dispatch) with {ARTIFACT}\n"
    )


def test_a_default_branch_other_than_main_is_asked_of_gh(github, tmp_path):
    github.default_branch = "trunk"
    github.add_run("nightly.yml", "success", night(tmp_path, "main"))
    trunk = github.add_run("nightly.yml", "success", night(tmp_path, "trunk"), branch="trunk")
    assert fetch(tmp_path).returncode == 0
    assert fetched(tmp_path) == [str(trunk)]


def test_main_s_latest_push_is_not_a_fork_s_pull_request_from_its_own_main(github, tmp_path):
    pushed = github.add_run("tests.yml", "success", night(tmp_path, "push"), event="push")
    github.add_run("tests.yml", "success", night(tmp_path, "fork"), event="pull_request")
    assert fetch(tmp_path, "1", "tests.yml", EVENTS="push").returncode == 0
    assert fetched(tmp_path) == [str(pushed)]


def test_no_run_yet_is_said_not_hidden(github, tmp_path):
    github.add_run("nightly.yml", "", {}, status="in_progress")
    result = fetch(tmp_path)
    assert result.returncode == 0
    assert (
        "fetched no run: no finished schedule workflow_dispatch run of nightly.yml on main"
        in (tmp_path / "history" / "fetch.txt").read_text()
    )


def test_an_expired_artifact_is_skipped_in_gh_s_words_and_the_rest_fetched(github, tmp_path):
    old = github.add_run("nightly.yml", "success", night(tmp_path, "old"))
    new = github.add_run("nightly.yml", "success", night(tmp_path, "new"))
    github.expire(old, ARTIFACT)
    result = fetch(tmp_path)
    assert result.returncode == 0
    assert fetched(tmp_path) == [str(new)]
    text = (tmp_path / "history" / "fetch.txt").read_text()
    assert f"run(s) {old} have no artifact {ARTIFACT} (expired, or the run ended before uploading)" in text


def test_a_gh_failure_fails_the_fetch_with_gh_s_words(github, tmp_path):
    github.add_run("nightly.yml", "success", night(tmp_path, "a"))
    github.outage = True
    result = fetch(tmp_path)
    assert result.returncode == 1
    text = (tmp_path / "history" / "fetch.txt").read_text()
    assert text.startswith("FAILED: could not ask gh for the default branch: error connecting to api.github.com")
    github.outage = False
    broken = github.add_run("nightly.yml", "success", night(tmp_path, "b"))
    github.download_errors[broken] = "error downloading perfgate-nightly-cpu: HTTP 502: Bad Gateway"
    result = fetch(tmp_path, BRANCH="main")
    assert result.returncode == 1
    assert (
        f"FAILED: gh run download {broken} failed: error downloading perfgate-nightly-cpu: HTTP 502"
        in (tmp_path / "history" / "fetch.txt").read_text()
    )


def test_without_a_token_gh_s_own_message_is_kept(github, tmp_path, monkeypatch):
    monkeypatch.delenv("GH_TOKEN")
    result = fetch(tmp_path, BRANCH="main")
    assert result.returncode == 1
    assert "set the GH_TOKEN environment variable" in (tmp_path / "history" / "fetch.txt").read_text()
