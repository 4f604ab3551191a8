"""scripts/alert.py against a fake ``gh`` that keeps its labels and issues in a JSON file and, as the real
one does, refuses an issue whose label the repository lacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests import fake_gh as fake_github
from tests.fake_gh import FakeGitHub
from tests.user_project import ROOT


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """A repository without the perfgate label, as a new one is."""
    return fake_github.install(tmp_path, monkeypatch)


def comparison(tmp_path: Path, status: str, confirmed: bool | None) -> Path:
    figure = {"name": "speedup", "status": status, "current": 2.9, "reference": 3.55, "low": 3.2, "high": 3.9,
              "runs": 5}  # fmt: skip
    cases = [
        {"case_id": "minilm/ort-int8/b1/cpu", "status": status, "confirmed": confirmed, "detail": "",
         "reproduce": "pytest 'perf/t.py::t[ort-int8]'", "figures": [figure]},
        {"case_id": "minilm/bf16-cast/b1/cpu", "status": "unchanged", "confirmed": None, "detail": "",
         "reproduce": "", "figures": []},
    ]  # fmt: skip
    path = tmp_path / f"compare-{status}-{confirmed}.json"
    path.write_text(json.dumps({"history_runs": 5, "excluded": [], "cases": cases}))
    return path


def alert(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "scripts" / "alert.py"), str(path), "--run-url", "RUN", *extra]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def issues(github: FakeGitHub) -> list[dict]:
    return github.issues()


def test_a_confirmed_regression_opens_one_issue_for_its_family(fake_gh, tmp_path):
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 0, result.stderr
    (issue,) = issues(fake_gh)
    assert issue["title"] == "perfgate: confirmed regression in ort-int8"
    assert "pytest 'perf/t.py::t[ort-int8]'" in issue["body"]
    assert "speedup 2.9 vs 3.55" in issue["body"]


def test_an_unconfirmed_blip_opens_nothing(fake_gh, tmp_path):
    assert alert(comparison(tmp_path, "regression", False)).returncode == 0
    assert issues(fake_gh) == []


def test_a_repeat_comments_and_clean_nights_close_the_issue(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    alert(comparison(tmp_path, "regression", True))
    assert len(issues(fake_gh)) == 1  # one issue per family, commented on
    assert len(issues(fake_gh)[0]["comments"]) == 1
    clean = comparison(tmp_path, "unchanged", None)
    for night in (1, 2):
        alert(clean)
        assert issues(fake_gh)[0]["state"] == "open", night
    result = alert(clean)
    assert "closed #1 (ort-int8)" in result.stdout
    assert issues(fake_gh)[0]["state"] == "closed"


def test_a_regression_interrupts_the_clean_streak(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    clean = comparison(tmp_path, "unchanged", None)
    alert(clean)
    alert(clean)
    alert(comparison(tmp_path, "regression", True))  # streak broken
    alert(clean)
    assert issues(fake_gh)[0]["state"] == "open"
    assert issues(fake_gh)[0]["comments"][-1].startswith("perfgate: clean night 1/3")


def test_an_unreadable_comparison_is_named(fake_gh, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    result = alert(broken)
    assert result.returncode == 2
    assert "write it with perfgate compare --json" in result.stderr


def test_the_label_is_created_before_the_first_issue_and_the_fake_refuses_a_missing_one(fake_gh, tmp_path):
    result = subprocess.run(["gh", "issue", "create", "--title", "t", "--label", "perfgate-regression",
                             "--body", "b"], capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 1
    assert "'perfgate-regression' not found" in result.stderr
    assert alert(comparison(tmp_path, "regression", True)).returncode == 0
    assert fake_gh.state["labels"] == ["perfgate-regression"]
    assert issues(fake_gh)[0]["labels"] == ["perfgate-regression"]
    calls = [call[:2] for call in fake_gh.calls()][1:]  # after the refused create above
    assert calls.index(["label", "create"]) < calls.index(["issue", "create"])


def test_a_gh_failure_is_one_line_with_gh_s_words_and_exit_1(fake_gh, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_GH_STATE", str(tmp_path / "absent.json"))
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 1
    assert result.stderr.startswith("alert: gh issue list failed:")


def test_new_issues_are_assigned_and_mention_the_configured_people(fake_gh, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFGATE_ALERT_MENTIONS", "@org/perf, alice")
    result = alert(comparison(tmp_path, "regression", True), "--assignee", "bob", "--assignee", "carol")
    assert "assigned to bob, carol" in result.stdout
    (issue,) = issues(fake_gh)
    assert issue["assignees"] == ["bob", "carol"]
    assert issue["body"].endswith("cc @org/perf @alice")


def test_a_confirmed_failure_alerts_like_a_regression(fake_gh, tmp_path):
    path = comparison(tmp_path, "failed", True)
    data = json.loads(path.read_text())
    data["cases"][0]["detail"] = "no result: outcome crashed (SIGSEGV)"
    data["cases"][0]["figures"] = []
    path.write_text(json.dumps(data))
    assert alert(path).returncode == 0
    (issue,) = issues(fake_gh)
    assert "(failed): no result: outcome crashed (SIGSEGV)" in issue["body"]


def accepted(path: Path, when: str) -> Path:
    data = json.loads(path.read_text())
    data["acceptances"] = [{"perfgate_acceptance": 1, "cases": ["minilm/ort-int8/b1/cpu"], "since": "x",
                            "run": "night3.json", "reason": "the new tokenizer pads less", "who": "maintainer",
                            "when": when}]  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def test_an_acceptance_closes_the_family_s_issue_quoting_the_reason(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    result = alert(accepted(comparison(tmp_path, "unchanged", None), "2099-01-01T00:00:00+00:00"))
    assert "closed #1 (ort-int8): accepted by maintainer" in result.stdout
    (issue,) = issues(fake_gh)
    assert issue["state"] == "closed"
    assert issue["reason"] == "not planned"
    assert '"the new tokenizer pads less"' in issue["comments"][-1]
    assert alert(accepted(comparison(tmp_path, "unchanged", None), "2099-01-01T00:00:00+00:00")).stdout == ""


def test_an_old_acceptance_never_closes_a_regression_found_after_it(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    result = alert(accepted(comparison(tmp_path, "unchanged", None), "2000-01-01T00:00:00+00:00"))
    assert "accepted" not in result.stdout
    assert issues(fake_gh)[0]["state"] == "open"
