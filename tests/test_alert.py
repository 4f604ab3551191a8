"""scripts/alert.py against a fake ``gh`` as strict as the real one (tests/fake_gh.py): it refuses an
issue whose label the repository lacks, an assignee who is not an assignable login, an unknown flag."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import fake_gh as fake_github
from tests.fake_gh import FakeGitHub
from tests.user_project import ROOT

CASE = "minilm/ort-int8/b1/cpu"
TITLE = "perfgate: confirmed regression in ort-int8 on cpu-avx2 (nightly-cpu)"


@pytest.fixture
def fake_gh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A repository without the perfgate label, as a new one is."""
    yield from fake_github.install(tmp_path, monkeypatch)


def comparison(tmp_path: Path, status: str, confirmed: bool | None, runner: str = "cpu-avx2",
               others: tuple[tuple[str, str], ...] = (("minilm/bf16-cast/b1/cpu", "unchanged"),)) -> Path:  # fmt: skip
    figure = {"name": "speedup", "status": status, "current": 2.9, "reference": 3.55, "low": 3.2, "high": 3.9,
              "runs": 5}  # fmt: skip
    cases = [{"case_id": CASE, "status": status, "confirmed": confirmed, "detail": "", "runner_class": runner,
              "reproduce": "pytest 'perf/t.py::t[ort-int8]'", "figures": [figure]}]  # fmt: skip
    cases += [{"case_id": case_id, "status": other, "confirmed": None, "detail": "", "runner_class": runner,
               "reproduce": "", "figures": []} for case_id, other in others]  # fmt: skip
    path = tmp_path / f"compare-{status}-{confirmed}-{runner}-{len(others)}.json"
    path.write_text(json.dumps({"cases": cases}))
    return path


def alert(path: Path, *extra: str, workflow: str = "nightly-cpu") -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(ROOT / "scripts" / "alert.py"), str(path), "--run-url", "RUN",
               "--workflow", workflow, *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_a_confirmed_regression_opens_one_issue_for_its_family_class_and_workflow(fake_gh, tmp_path):
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 0, result.stderr
    (issue,) = fake_gh.issues()
    assert issue["title"] == TITLE
    assert "pytest 'perf/t.py::t[ort-int8]'" in issue["body"]
    assert "speedup 2.9 vs 3.55" in issue["body"]


def test_an_unconfirmed_blip_opens_nothing(fake_gh, tmp_path):
    assert alert(comparison(tmp_path, "regression", False)).returncode == 0
    assert fake_gh.issues() == []


def test_a_repeat_comments_and_clean_nights_close_the_issue(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    alert(comparison(tmp_path, "regression", True))
    assert len(fake_gh.issues()) == 1  # one issue per family and class, commented on
    assert len(fake_gh.issues()[0]["comments"]) == 1
    clean = comparison(tmp_path, "unchanged", None)
    for night in (1, 2):
        alert(clean)
        assert fake_gh.issues()[0]["state"] == "open", night
    result = alert(clean)
    assert "closed #1 (ort-int8 on cpu-avx2)" in result.stdout
    assert fake_gh.issues()[0]["state"] == "closed"


def test_a_regression_interrupts_the_clean_streak(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    clean = comparison(tmp_path, "unchanged", None)
    alert(clean)
    alert(clean)
    alert(comparison(tmp_path, "regression", True))  # streak broken
    alert(clean)
    assert fake_gh.issues()[0]["state"] == "open"
    assert fake_gh.issues()[0]["comments"][-1]["body"].startswith("perfgate: clean night 1/3")


def test_a_missing_case_is_never_a_clean_night_even_when_its_family_was_measured(fake_gh, tmp_path):
    """The regressed case's shard uploaded nothing; another case of its family was measured unchanged."""
    alert(comparison(tmp_path, "regression", True))
    missing = comparison(tmp_path, "missing", None, others=(("tiny-bert/ort-int8/b1/cpu", "unchanged"),))
    for _ in range(4):
        result = alert(missing)
        assert "no clean night on #1 (ort-int8 on cpu-avx2): minilm/ort-int8/b1/cpu not compared" in result.stdout
    (issue,) = fake_gh.issues()
    assert issue["state"] == "open"
    assert issue["comments"] == []


def test_a_night_on_another_class_says_nothing_of_this_class_s_issue(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True, runner="cpu-avx512-bf16"))
    for _ in range(3):
        alert(comparison(tmp_path, "unchanged", None, runner="cpu-avx2"))
    (issue,) = fake_gh.issues()
    assert issue["title"] == "perfgate: confirmed regression in ort-int8 on cpu-avx512-bf16 (nightly-cpu)"
    assert (issue["state"], issue["comments"]) == ("open", [])


def test_the_cpu_and_gpu_nightlies_keep_their_issues_apart(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True), workflow="nightly-cpu")
    alert(comparison(tmp_path, "regression", True, runner="gpu-sm90"), workflow="nightly")
    for _ in range(3):
        alert(comparison(tmp_path, "unchanged", None, runner="gpu-sm90"), workflow="nightly")
    states = {issue["title"]: issue["state"] for issue in fake_gh.issues()}
    assert states == {TITLE: "open", "perfgate: confirmed regression in ort-int8 on gpu-sm90 (nightly)": "closed"}


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
    assert fake_gh.labels == ["perfgate-regression"]
    assert fake_gh.issues()[0]["labels"] == ["perfgate-regression"]
    calls = [call[:2] for call in fake_gh.calls()][1:]  # after the refused create above
    assert calls.index(["label", "create"]) < calls.index(["issue", "create"])


def test_a_gh_failure_is_one_line_with_gh_s_words_and_exit_1(fake_gh, tmp_path):
    fake_gh.outage = True
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 1
    assert result.stderr.startswith("alert: gh issue list failed: error connecting to api.github.com")


def test_new_issues_are_assigned_and_mention_the_configured_people(fake_gh, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFGATE_ALERT_MENTIONS", "@org/perf, alice")
    result = alert(comparison(tmp_path, "regression", True), "--assignee", "bob", "--assignee", "carol")
    assert "assigned to bob, carol" in result.stdout
    (issue,) = fake_gh.issues()
    assert issue["assignees"] == ["bob", "carol"]
    assert issue["body"].endswith("cc @org/perf @alice")


@pytest.mark.parametrize(
    ("given", "hint"),
    [("@alice", "write it without the @ ('alice')"), ("org/perf", "a team cannot be assigned"),
     ("al_ice!", "a GitHub login has letters")],
)  # fmt: skip
def test_an_assignee_gh_would_refuse_is_named_with_its_variable_before_any_call(fake_gh, tmp_path, monkeypatch,
                                                                                given, hint):  # fmt: skip
    monkeypatch.setenv("PERFGATE_ALERT_ASSIGNEES", given)
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 1
    assert f"assignee {given!r} (--assignee or PERFGATE_ALERT_ASSIGNEES) is not a GitHub login: {hint}" in result.stderr
    assert fake_gh.calls() == []


def test_the_fake_refuses_an_assignee_who_is_no_login_of_the_repository(fake_gh, tmp_path, monkeypatch):
    monkeypatch.setenv("PERFGATE_ALERT_ASSIGNEES", "mallory")
    result = alert(comparison(tmp_path, "regression", True))
    assert result.returncode == 1
    assert "gh issue create failed: 'mallory' not found" in result.stderr


def test_a_confirmed_failure_alerts_like_a_regression(fake_gh, tmp_path):
    path = comparison(tmp_path, "failed", True)
    data = json.loads(path.read_text())
    data["cases"][0]["detail"] = "no result: outcome crashed (SIGSEGV)"
    data["cases"][0]["figures"] = []
    path.write_text(json.dumps(data))
    assert alert(path).returncode == 0
    (issue,) = fake_gh.issues()
    assert "(failed): no result: outcome crashed (SIGSEGV)" in issue["body"]


def accepted(path: Path, when: str) -> Path:
    data = json.loads(path.read_text())
    data["acceptances"] = [{"perfgate_acceptance": 1, "cases": [CASE], "since": "x",
                            "run": "night3.json", "reason": "the new tokenizer pads less", "who": "maintainer",
                            "when": when}]  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def test_an_acceptance_closes_the_family_s_issues_on_every_class_quoting_the_reason(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    alert(comparison(tmp_path, "regression", True, runner="cpu-avx512-bf16"))
    result = alert(accepted(comparison(tmp_path, "unchanged", None), "2099-01-01T00:00:00+00:00"))
    assert "closed #1 (ort-int8 on cpu-avx2): accepted by maintainer" in result.stdout
    assert "closed #2 (ort-int8 on cpu-avx512-bf16): accepted by maintainer" in result.stdout
    for issue in fake_gh.issues():
        assert issue["state"] == "closed"
        assert issue["reason"] == "not planned"
        assert '"the new tokenizer pads less"' in issue["comments"][-1]["body"]
    assert alert(accepted(comparison(tmp_path, "unchanged", None), "2099-01-01T00:00:00+00:00")).stdout == ""


def test_an_old_acceptance_never_closes_a_regression_found_after_it(fake_gh, tmp_path):
    alert(comparison(tmp_path, "regression", True))
    result = alert(accepted(comparison(tmp_path, "unchanged", None), "2000-01-01T00:00:00+00:00"))
    assert "accepted" not in result.stdout
    assert fake_gh.issues()[0]["state"] == "open"


def test_the_fake_refuses_what_gh_refuses(fake_gh, monkeypatch):
    def gh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gh", *args], capture_output=True, text=True, check=False)

    assert "unknown flag: --labels" in gh("issue", "list", "--labels", "x").stderr
    assert 'Unknown JSON field: "id_"' in gh("run", "list", "--json", "id_").stderr
    assert "valid values are {completed|not planned}" in gh("issue", "close", "1", "--reason", "wontfix").stderr
    assert "invalid limit: 0" in gh("run", "list", "--limit", "0").stderr
    monkeypatch.delenv("GH_TOKEN")
    missing = gh("issue", "list")
    assert (missing.returncode, missing.stderr.splitlines()[0]) == (4, fake_github.AUTH_MESSAGE.splitlines()[0])


def explained(tmp_path: Path, cases: int = 1, ops: int = 15) -> Path:
    """A comparison whose confirmed regressions carry ``compare --explain``'s diff (``explain.diff`` on
    planted rounds: an ``aten::mm`` that appeared, and ``ops`` others that moved a little)."""
    from perfgate.answers.explain import diff, markdown

    base = {(f"aten::op{number}", f"[[{number}, 64]]"): 10e-6 for number in range(ops)}
    planted = {**{key: value * 1.01 for key, value in base.items()}, ("aten::mm", "[[768, 768], [768, 768]]"): 3e-4}
    explanation = diff(CASE, {"baseline": [base, base], "candidate": [planted, planted]}, calls=10)
    explanation.baseline, explanation.candidate = "good 1111111", "now 2222222"
    path = comparison(tmp_path, "regression", True, others=())
    data = json.loads(path.read_text())
    data["cases"] = [{**data["cases"][0], "case_id": f"minilm{number}/ort-int8/b1/cpu"} for number in range(cases)]
    for case in data["cases"]:
        case["explain"] = {**explanation.to_dict(), "markdown": markdown(explanation, "cpu-avx2", top=ops + 1)}
    path.write_text(json.dumps(data))
    return path


def test_an_explained_regression_s_issue_carries_its_op_by_op_diff(fake_gh, tmp_path):
    result = alert(explained(tmp_path))
    assert result.returncode == 0, result.stderr
    (issue,) = fake_gh.issues()
    body = issue["body"]
    assert "| op | input shapes | good 1111111 µs | now 2222222 µs |" in body
    assert "| `aten::mm` | `[[768, 768], [768, 768]]` | - |" in body
    assert body.index("(regression)") < body.index("aten::mm") < body.index("perfgate accept")


def test_diffs_too_long_for_an_issue_are_cut_and_the_issue_still_opens(fake_gh, tmp_path):
    """GitHub refuses a body over 65,536 characters (and so does the fake: shown below)."""
    path = explained(tmp_path, cases=12, ops=300)
    result = alert(path)
    assert result.returncode == 0, result.stderr
    (issue,) = fake_gh.issues()
    assert len(issue["body"]) <= fake_github.BODY_LIMIT
    assert issue["body"].count("(cut to fit the issue") == 12
    assert issue["body"].count("(regression)") == 12  # every case still named, with its command
    assert issue["body"].rstrip().endswith("inputs).")
    too_long = subprocess.run(["gh", "issue", "comment", "1", "--body", "x" * 65537],
                              capture_output=True, text=True, check=False)  # fmt: skip
    assert too_long.returncode != 0
    assert "Body is too long" in too_long.stderr
