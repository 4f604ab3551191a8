"""scripts/alert.py against a fake ``gh`` that keeps its issues in a JSON file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.user_project import ROOT

FAKE_GH = r"""#!/usr/bin/env python3
import json, os, sys
state_path = os.environ["FAKE_GH_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
with open(state_path + ".log", "a") as log:
    log.write(json.dumps(args) + "\n")
def option(name):
    return args[args.index(name) + 1]
if args[:2] == ["issue", "list"]:
    print(json.dumps([{"number": i["number"], "title": i["title"]} for i in state["issues"] if i["state"] == "open"]))
elif args[:2] == ["issue", "view"]:
    issue = next(i for i in state["issues"] if i["number"] == int(args[2]))
    print(json.dumps({"comments": [{"body": b} for b in issue["comments"]]}))
elif args[:2] == ["issue", "comment"]:
    next(i for i in state["issues"] if i["number"] == int(args[2]))["comments"].append(option("--body"))
elif args[:2] == ["issue", "create"]:
    number = len(state["issues"]) + 1
    state["issues"].append({"number": number, "title": option("--title"), "state": "open", "comments": [],
                            "body": option("--body")})
elif args[:2] == ["issue", "close"]:
    next(i for i in state["issues"] if i["number"] == int(args[2]))["state"] = "closed"
json.dump(state, open(state_path, "w"))
"""


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(FAKE_GH.replace("/usr/bin/env python3", sys.executable))
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "gh-state.json"
    state.write_text(json.dumps({"issues": []}))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    return state


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


def issues(state: Path) -> list[dict]:
    return json.loads(state.read_text())["issues"]


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
