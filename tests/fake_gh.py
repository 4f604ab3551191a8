"""A fake ``gh`` CLI on PATH that keeps a repository's labels, issues, workflow runs and their artifacts in
one JSON file, and refuses what the real one refuses: an issue with a label the repository lacks, an
artifact a run does not have. Used by the alert tests and the nightly replay."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SCRIPT = r"""#!/usr/bin/env python3
import json, os, shutil, sys
state_path = os.environ["FAKE_GH_STATE"]
state = json.load(open(state_path))
args = sys.argv[1:]
with open(state_path + ".log", "a") as log:
    log.write(json.dumps(args) + "\n")


def option(name, default=None):
    return args[args.index(name) + 1] if name in args else default


def options(name):
    return [args[i + 1] for i, a in enumerate(args) if a == name]


def fail(message):
    print(message, file=sys.stderr)
    sys.exit(1)


def issue(number):
    found = [i for i in state["issues"] if i["number"] == int(number)]
    if not found:
        fail(f"GraphQL: Could not resolve to an issue or pull request with the number of {number}.")
    return found[0]


state["clock"] = state.get("clock", 0) + 1
now = f"2026-12-01T00:{state['clock'] // 60:02d}:{state['clock'] % 60:02d}Z"
command = args[:2]
if command == ["issue", "list"]:
    label = option("--label")
    fields = option("--json").split(",")
    found = [i for i in state["issues"] if i["state"] == "open" and (label is None or label in i["labels"])]
    print(json.dumps([{f: i[f] for f in fields} for i in found]))
elif command == ["issue", "view"]:
    print(json.dumps({"comments": [{"body": b} for b in issue(args[2])["comments"]]}))
elif command == ["issue", "comment"]:
    issue(args[2])["comments"].append(option("--body"))
elif command == ["issue", "create"]:
    labels = options("--label")
    for label in labels:
        if label not in state["labels"]:
            fail(f"could not add label: '{label}' not found")
    number = len(state["issues"]) + 1
    state["issues"].append({"number": number, "title": option("--title"), "state": "open", "comments": [],
                            "body": option("--body"), "labels": labels, "assignees": options("--assignee"),
                            "createdAt": now})
    print(f"https://github.com/owner/repo/issues/{number}")
elif command == ["issue", "close"]:
    closed = issue(args[2])
    if option("--comment"):
        closed["comments"].append(option("--comment"))
    closed["state"] = "closed"
    closed["reason"] = option("--reason")
elif command == ["label", "create"]:
    if args[2] in state["labels"] and "--force" not in args:
        fail(f"label with name \"{args[2]}\" already exists; use `--force` to update its color and description")
    if args[2] not in state["labels"]:
        state["labels"].append(args[2])
elif command == ["run", "list"]:
    fields = option("--json").split(",")
    runs = [r for r in state["runs"] if r["workflow"] == option("--workflow")]
    if option("--branch"):
        runs = [r for r in runs if r["branch"] == option("--branch")]
    runs = sorted(runs, key=lambda r: -r["databaseId"])[: int(option("--limit", 20))]
    print(json.dumps([{f: r[f] for f in fields} for r in runs]))
elif command == ["run", "download"]:
    run = next((r for r in state["runs"] if r["databaseId"] == int(args[2])), None)
    name = option("--name")
    if run is None or name not in run["artifacts"]:
        fail("no valid artifacts found to download")
    shutil.copytree(run["artifacts"][name], option("--dir"), dirs_exist_ok=True)
else:
    fail(f"fake gh: unsupported command {args}")
json.dump(state, open(state_path, "w"))
"""


@dataclass
class FakeGitHub:
    state_path: Path
    artifacts: Path  # where uploaded artifacts are kept, one folder per run and name

    @property
    def state(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())

    def issues(self) -> list[dict[str, Any]]:
        return self.state["issues"]

    def calls(self) -> list[list[str]]:
        log = Path(str(self.state_path) + ".log")
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def add_run(self, workflow: str, conclusion: str, uploads: dict[str, Path], branch: str = "main") -> int:
        """A finished workflow run whose artifacts are copies of ``uploads`` (artifact name -> folder)."""
        state = self.state
        number = 1000 + len(state["runs"])
        kept = {}
        for name, folder in uploads.items():
            target = self.artifacts / str(number) / name
            shutil.copytree(folder, target)
            kept[name] = str(target)
        state["runs"].append({"databaseId": number, "workflow": workflow, "branch": branch,
                              "conclusion": conclusion, "artifacts": kept})  # fmt: skip
        self.state_path.write_text(json.dumps(state))
        return number


def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, labels: tuple[str, ...] = ()) -> FakeGitHub:
    """Put the fake ``gh`` first on PATH (for subprocesses too) with an empty repository."""
    bin_dir = tmp_path / "fake-gh-bin"
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(SCRIPT.replace("/usr/bin/env python3", sys.executable))
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    state = tmp_path / "gh-state.json"
    state.write_text(json.dumps({"labels": list(labels), "issues": [], "runs": []}))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GH_STATE", str(state))
    return FakeGitHub(state, tmp_path / "fake-gh-artifacts")
