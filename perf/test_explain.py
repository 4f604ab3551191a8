"""``perfgate explain`` on an ONNX Runtime case, as a user runs it: the session's own nodes come from ONNX
Runtime's profiler (``ort::...``), so an unoptimized session set against O2 names the fused nodes that
vanished and the unfused parts that appeared. Nightly: two exports and a profiled process (about a minute)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from perfgate.cli import main


@pytest.mark.slow
@pytest.mark.requires("onnxruntime", "onnx")
def test_explain_names_the_fused_nodes_an_unoptimized_session_lacks_against_o2(tmp_path, capsys):
    out = tmp_path / "explain"
    case = "tiny-bert/planted-onnxruntime-unoptimized/b1/cpu"
    code = main(["explain", "--case", case, "--baseline", "onnxruntime-o2", "--rounds", "4", "--calls", "5",
                 "--threads", "1", "--out", str(out)])  # fmt: skip
    table = capsys.readouterr().out
    assert code == 0, table
    explanation = json.loads((out / "explain.json").read_text())
    assert explanation["baseline"] == "onnxruntime-o2"
    by_status: dict[str, set[str]] = {}
    for op in explanation["ops"]:
        by_status.setdefault(op["status"], set()).add(op["name"])
    fused = {
        "ort::Attention",
        "ort::MultiHeadAttention",
        "ort::SkipLayerNormalization",
        "ort::BiasGelu",
        "ort::FastGelu",
    }
    assert fused & by_status.get("vanished", set()), table  # O2's fusions, absent from the unoptimized graph
    assert {"ort::Softmax", "ort::Erf"} <= by_status.get("appeared", set()), table  # attention's and GELU's parts
    assert "| onnxruntime-o2 µs |" in table


TEST = """
def test_planted(perfgate):
    perfgate.measure("micro", "planted-extra", batch_size=2, memory=False)
"""


@pytest.fixture
def fake_gh(tmp_path, monkeypatch):
    from tests import fake_gh

    yield from fake_gh.install(tmp_path, monkeypatch)


@pytest.mark.slow
def test_compare_explain_names_the_matmul_a_commit_planted_and_the_alert_carries_it(tmp_path, monkeypatch, fake_gh):
    """As the nightly runs it: a night at the good commit stored, a night at the commit that adds a
    512 x 512 matmul to every forward, then ``perfgate compare --confirm --explain 1`` (the console script,
    in the checkout) and ``scripts/alert.py`` on its compare.json. About a minute: three pytest runs, two
    probes, two workers."""
    from tests.micro_model import micro_bert
    from tests.test_bisect import git
    from tests.test_explain_regression import CONFTEST
    from tests.user_project import ROOT, SENTENCES

    for name in [key for key in os.environ if key.startswith("PERFGATE_")]:
        monkeypatch.delenv(name)
    repository = tmp_path / "repository"
    repository.mkdir()
    (repository / "pytest.ini").write_text(f"[pytest]\nperfgate_sentences = {SENTENCES}\nperfgate_cache_dir = cache\n")
    (repository / ".gitignore").write_text("cache/\nout*/\nhistory/\n")
    (repository / "conftest.py").write_text(CONFTEST.format(model=str(micro_bert(tmp_path / "micro-bert"))))
    (repository / "test_planted.py").write_text(TEST)
    git(repository, "init", "--quiet", "--initial-branch=main")
    perfgate = [sys.executable, "-m", "perfgate"]
    for night, size in enumerate((0, 512)):
        (repository / "planted_extra.py").write_text(f"SIZE = {size}\n")
        git(repository, "add", "--all")
        git(repository, "commit", "--quiet", "-m", f"size {size}")
        command = [sys.executable, "-m", "pytest", "-q", "--perfgate-budget=1", f"--perfgate-report-dir=out{night}"]
        ran = subprocess.run(command, cwd=repository, capture_output=True, text=True, check=False)
        assert ran.returncode == 0, ran.stdout[-2000:]
        if night == 0:
            subprocess.run(
                [*perfgate, "store", "out0/results.json", "--history", "history"], cwd=repository, check=True
            )
    command = [*perfgate, "compare", "out1/results.json", "--history", "history", "--confirm", "--explain", "1",
               "--json", "compare.json"]  # fmt: skip
    compared = subprocess.run(command, cwd=repository, capture_output=True, text=True, check=False)
    assert compared.returncode == 1, compared.stdout + compared.stderr
    assert "## Where the time went (`--explain`)" in compared.stdout
    (case,) = json.loads((repository / "compare.json").read_text())["cases"]
    first = case["explain"]["ops"][0]
    assert (first["name"], first["shapes"], first["status"]) == ("aten::mm", "[[512, 512], [512, 512]]", "appeared")
    assert first["share"] > 0.5, case["explain"]["markdown"]
    command = [sys.executable, str(ROOT / "scripts" / "alert.py"), str(repository / "compare.json"), "--run-url", "RUN",
               "--workflow", "nightly-cpu"]  # fmt: skip
    alert = subprocess.run(command, capture_output=True, text=True, check=False)
    assert alert.returncode == 0, alert.stderr
    (issue,) = fake_gh.issues()
    assert "| `aten::mm` | `[[512, 512], [512, 512]]` | - |" in issue["body"]


@pytest.mark.slow
def test_compare_explain_profiles_a_library_release_in_an_overlay_of_the_good_run_s_version(tmp_path, monkeypatch):
    """The same code, a library upgraded between the runs (plantedlib 1.0 -> 1.1, whose 1.1 adds a 512 x 512
    matmul to every forward): the good side runs in an overlay environment serving 1.0, this side in
    one serving 1.1, and the diff names the matmul. About half a minute: two overlays, two workers."""
    from perfgate.answers.explain_regression import RegressionExplainer
    from perfgate.subjects.environments import install_into, overlay_environment
    from tests.micro_model import micro_bert
    from tests.test_bisect import write_wheel
    from tests.test_explain_regression import CONFTEST, compared, record
    from tests.user_project import SENTENCES

    for name in [key for key in os.environ if key.startswith("PERFGATE_")]:
        monkeypatch.delenv(name)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for version, size in (("1.0", 0), ("1.1", 512)):
        write_wheel(wheels, "plantedlib", version, f"SIZE = {size}\n")
    index = ("--no-index", f"--find-links={wheels}")
    upgraded = overlay_environment(tmp_path / "this-environment")
    install_into(upgraded, "plantedlib==1.1", index)
    project = tmp_path / "project"  # no git: the code is the same on both sides
    project.mkdir()
    (project / "pytest.ini").write_text(f"[pytest]\nperfgate_sentences = {SENTENCES}\nperfgate_cache_dir = cache\n")
    conftest = CONFTEST.format(model=str(micro_bert(tmp_path / "micro-bert"))).replace("planted_extra", "plantedlib")
    (project / "conftest.py").write_text(conftest)
    monkeypatch.chdir(project)
    case = "micro/planted-extra/b2/cpu"
    good, current = record({case: 1.0}, None, 1), record({case: 0.3}, None, 2)
    good.fingerprint["libraries"]["plantedlib"], current.fingerprint["libraries"]["plantedlib"] = "1.0", "1.1"
    comparison = compared(current, good)
    explainer = RegressionExplainer(1, tmp_path / "explain", project, rounds=4, calls=5, python=str(upgraded),
                                    index_options=index, log=lambda _: None)  # fmt: skip
    lines = explainer.explain(comparison, current)
    explained = comparison.cases[0].explanation
    assert "markdown" in explained, lines
    first = explained["ops"][0]
    assert (first["name"], first["shapes"], first["status"]) == ("aten::mm", "[[512, 512], [512, 512]]", "appeared")
    assert (explained["baseline"], explained["candidate"]) == ("good plantedlib 1.0", "now plantedlib 1.1")
