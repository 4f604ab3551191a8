"""README.md's "Your own technique" runs as written: its files into a user's project, its command line."""

from __future__ import annotations

import json
import re
import shlex
import shutil

import pytest

from tests.user_project import ROOT

SECTION = "### Your own technique"


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n### ", start + len(title))
    return text[start : end if end != -1 else len(text)]


def fenced_blocks(section: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", section, flags=re.DOTALL)]


def test_the_readme_s_own_technique_runs_as_written(project, micro_model_dir, monkeypatch):
    blocks = fenced_blocks(readme_section(SECTION))
    files = {body.splitlines()[0].removeprefix("# ").split(":")[0]: body for lang, body in blocks if lang != "bash"}
    assert set(files) == {"conftest.py", "test_mine.py", "thresholds.toml"}
    for name, body in files.items():
        (project.path / name).write_text(body)
    (command,) = [body.strip() for lang, body in blocks if lang == "bash"]
    arguments = shlex.split(command)
    assert arguments[0] == "pytest"
    shutil.copytree(micro_model_dir, project.path / "my-model")  # the user's model directory
    monkeypatch.setenv("PERFGATE_BUDGET", "2")  # the README's command, with less timing to keep this quick
    monkeypatch.setenv("PERFGATE_MEMORY", "off")
    result = project.runpytest_subprocess(*arguments[1:], "--perfgate-report-dir=out")
    assert result.ret == pytest.ExitCode.OK, "\n".join(result.outlines[-30:])
    (case,) = json.loads((project.path / "out" / "results.json").read_text())["cases"]
    assert case["spec"]["technique"] == "no-grad-eager"
    assert case["outcome"] == "measured"
    assert case["metrics"]["fidelity"]["cosine_min"] > 0.999  # judged by the section's own threshold
    assert any(c["name"] == "min_cosine" and c["verdict"] == "pass" for c in case["checks"])
    assert case["verdict"] in {"ungated", "pass"}  # speed has no bound for this class until derived


def test_without_independent_of_source_the_error_names_the_flag(project, micro_model_dir, monkeypatch):
    """The same technique with the flag left out: the worker frees the fp32 module, and the message says
    which flag keeps it."""
    blocks = fenced_blocks(readme_section(SECTION))
    conftest = next(body for lang, body in blocks if body.startswith("# conftest.py"))
    broken = conftest.replace(", independent_of_source=False", "")
    assert broken != conftest
    (project.path / "conftest.py").write_text(broken)
    (project.path / "test_mine.py").write_text(next(body for lang, body in blocks if body.startswith("# test_mine")))
    shutil.copytree(micro_model_dir, project.path / "my-model")
    monkeypatch.setenv("PERFGATE_BUDGET", "1")
    result = project.runpytest_subprocess("--perfgate-model", "my-model=./my-model", "--perfgate-report-dir=out")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*the fp32 module was released*return Variant(..., independent_of_source=False)*"])
