"""``perfgate compare --explain``: which regressions are profiled, why one cannot be, and a real one
between two commits of a user's repository (an extra matmul planted in the second), profiled in two
live workers, one of them in a worktree of the good commit."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from perfgate.answers.explain_regression import Change, RegressionExplainer, change_between, explainable, import_paths
from perfgate.cli import main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome
from perfgate.records.regressions import Status, compare_run
from perfgate.records.results import RunRecord

from .test_bisect import clean_environment, git  # noqa: F401  (a fixture)
from .user_project import SENTENCES

CASE = "micro/planted-extra/b2/cpu"
FINGERPRINT = {
    "hardware_class": {"cpu": "cpu-test", "cuda": "gpu-none"},
    "libraries": {"torch": "2.9.1", "transformers": "4.57.6", "onnxruntime": "1.23.2"},
}


def record(speedups: dict[str, float], commit: str | None, night: int, scenario: str = "ab-forward") -> RunRecord:
    cases = []
    for case_id, speedup in speedups.items():
        model, technique, batch, _ = case_id.split("/")
        spec = CaseSpec(model, technique, int(batch[1:]), scenario=scenario)
        result = CaseResult(
            spec=spec, hardware_class="cpu-test", outcome=Outcome.MEASURED, nodeid=f"t.py::t[{technique}]"
        )
        result.metrics = {"speed": {"estimate": {"speedup": speedup, "ci_low": speedup * 0.97,
                                                 "ci_high": speedup * 1.03}}}  # fmt: skip
        cases.append(result)
    fingerprint = copy.deepcopy(FINGERPRINT)
    fingerprint["source"] = {"commit": commit, "dirty": False} if commit else {"commit": None, "why": "no .git"}
    return RunRecord(fingerprint=fingerprint, config={}, cases=cases, started=f"2026-12-{night:02d}T02:00:00+00:00")


def compared(current: RunRecord, good: RunRecord, confirmed: bool = True):
    comparison = compare_run(current, [(Path("good.json"), good)])
    for case in comparison.cases:
        case.confirmed = confirmed if case.status == Status.REGRESSION else None
    return comparison


def test_only_confirmed_speed_regressions_of_forward_cases_are_chosen_the_worst_first():
    good = record({"m/a/b1/cpu": 2.0, "m/b/b1/cpu": 2.0, "m/c/b1/cpu": 2.0}, "1" * 40, 1)
    current = record({"m/a/b1/cpu": 1.5, "m/b/b1/cpu": 0.5, "m/c/b1/cpu": 2.0}, "2" * 40, 2)
    assert [c.case_id for c in explainable(compared(current, good), current)] == ["m/b/b1/cpu", "m/a/b1/cpu"]
    assert explainable(compared(current, good, confirmed=False), current) == []  # a blip is not profiled
    training = record({"m/a/b1/cpu": 0.5}, "2" * 40, 2, scenario="train-step")
    assert explainable(compared(training, record({"m/a/b1/cpu": 2.0}, "1" * 40, 1)), training) == []


def test_code_is_set_against_code_and_libraries_against_libraries_and_the_sides_say_which():
    good, current = record({CASE: 1.0}, "1" * 40, 1), record({CASE: 0.3}, "2" * 40, 2)
    change = change_between(current, good)
    assert change == Change(("1" * 40, "2" * 40), {})
    assert change.labels == ("good 111111111111", "now 222222222222")
    same = record({CASE: 0.3}, "1" * 40, 2)
    assert "machine or its load" in change_between(same, good)
    same.fingerprint["source"]["dirty"] = True  # this tree changed beyond its commit: code against code
    assert change_between(same, good).commits == ("1" * 40, "1" * 40)
    upgraded = record({CASE: 0.3}, "1" * 40, 2)
    upgraded.fingerprint["libraries"]["torch"] = "2.9.2"
    change = change_between(upgraded, good)
    assert change == Change(None, {"torch": ("2.9.1", "2.9.2")})
    assert change.labels == ("good torch 2.9.1", "now torch 2.9.2")
    both = record({CASE: 0.3}, "2" * 40, 2)
    both.fingerprint["libraries"]["torch"] = "2.9.2"
    assert change_between(both, good).labels == ("good 111111111111 (torch 2.9.1)", "now 222222222222 (torch 2.9.2)")
    assert "recorded no commit (no .git) and the same libraries" in change_between(
        current, record({CASE: 1.0}, None, 1)
    )
    assert "this run recorded no commit" in change_between(record({CASE: 0.3}, None, 2), good)
    assert "no good run" in change_between(current, None)


def test_the_other_commit_s_worker_imports_its_checkout_but_perfgate_from_here(tmp_path, monkeypatch):
    from perfgate.answers.arms import SOURCE_ROOT

    top, checkout = tmp_path / "repository", tmp_path / "worktree"
    monkeypatch.setattr(sys, "path", [str(top / "lib"), str(SOURCE_ROOT), "/usr/lib/python3"])
    assert import_paths(top, top, top) is None  # this checkout: the project's own path
    assert import_paths(top, checkout, checkout / "project") == (
        str(checkout / "project"), str(checkout / "lib"), str(SOURCE_ROOT), "/usr/lib/python3"
    )  # fmt: skip
    # under an overlay (the good run's library versions) none of this environment's own entries
    assert import_paths(top, top, top / "project", overlay=True) == (
        str(top / "project"),
        str(top / "lib"),
        str(SOURCE_ROOT),
    )


def test_explain_without_confirm_is_refused_before_anything_runs(tmp_path, capsys):
    path = tmp_path / "results.json"
    record({CASE: 0.3}, "2" * 40, 2).save(path)
    assert main(["compare", str(path), "--history", str(tmp_path), "--explain", "1"]) == 2
    assert "profiles confirmed regressions only; add --confirm" in capsys.readouterr().err


# --- for real: two commits, two workers ---------------------------------------------------------------

CONFTEST = """
from pathlib import Path

import torch

from perfgate import Technique, Variant, register_technique
from perfgate.subjects.model import ModelSource


class PlantedExtra(Technique):
    name = "planted-extra"
    summary = "the fp32 forward, and a square matmul of SIZE (from planted_extra) after it"

    def apply(self, model, workdir, threads):
        from planted_extra import SIZE

        square = torch.randn(SIZE, SIZE) if SIZE else None

        def run(inputs):
            with torch.inference_mode():
                output = model.primary_output(model.module(**inputs), inputs)
                if square is not None:
                    torch.mm(square, square)
            return output

        return Variant(self.name, run, memory_bytes=0, independent_of_source=False)


register_technique("planted-extra", "conftest:PlantedExtra")


def pytest_perfgate_register_models(registry, config):
    registry.add(ModelSource("micro", "feature-extraction", path=Path({model!r})))
"""


def test_a_planted_matmul_between_two_commits_is_named_first_with_its_share(
    tmp_path, micro_model_dir, monkeypatch, clean_environment  # noqa: F811
):  # fmt: skip
    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "pytest.ini").write_text(f"[pytest]\nperfgate_sentences = {SENTENCES}\nperfgate_cache_dir = cache\n")
    (repository / "conftest.py").write_text(CONFTEST.format(model=str(micro_model_dir)))
    git(repository, "init", "--quiet", "--initial-branch=main")
    commits = []
    for size in (0, 768):  # the second commit adds a 768 x 768 matmul to every forward, ~10x the forward itself
        (repository / "planted_extra.py").write_text(f"SIZE = {size}\n")
        git(repository, "add", "--all")
        git(repository, "commit", "--quiet", "-m", f"size {size}")
        commits.append(git(repository, "rev-parse", "HEAD"))
    monkeypatch.chdir(repository)
    good, current = record({CASE: 1.0}, commits[0], 1), record({CASE: 0.3}, commits[1], 2)
    comparison = compared(current, good)
    lines = RegressionExplainer(1, tmp_path / "explain", repository, rounds=4, calls=5, log=lambda _: None).explain(
        comparison, current
    )  # fmt: skip
    assert lines == [f"{CASE}: explained in {comparison.cases[0].explanation['seconds']:.0f} s"], lines
    explained = comparison.cases[0].explanation
    first = explained["ops"][0]
    assert (first["name"], first["shapes"], first["status"]) == ("aten::mm", "[[768, 768], [768, 768]]", "appeared")
    assert first["share"] > 0.5, explained["markdown"]
    assert explained["baseline"] == f"good {commits[0][:12]}"
    assert f"| now {commits[1][:12]} µs |" in explained["markdown"]
    assert all(Path(trace).is_file() for trace in explained["traces"].values())
    assert git(repository, "worktree", "list").count("\n") == 0  # the good commit's worktree is gone
    assert json.loads(json.dumps(comparison.to_dict()))["cases"][0]["explain"]["ops"][0]["name"] == "aten::mm"
    assert "## Where the time went (`--explain`)" in comparison.markdown()
