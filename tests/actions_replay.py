"""Runs a GitHub Actions job's own steps on disk, as a runner would, so a workflow is tested as written.

Covers what perfgate's workflows use: ``run`` steps through bash with the step's ``env`` (expressions
``${{ a.b.c }}`` looked up in the contexts), ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY``, step ``id``
outputs, ``if`` conditions made of ``always()``, ``hashFiles('...') != ''`` and comparisons of context
values joined by ``&&``, a failed step skipping the later steps that do not say ``always()``, and job
``outputs``. Actions (``uses``) are the caller's: checkout and setup-python are the test's own checkout
and interpreter, and the artifact actions go through ``Artifacts``. ``scripts/bootstrap.sh`` steps are
skipped: the environment running the tests is the installed one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")


@dataclass
class Artifacts:
    """This workflow run's uploads: artifact name -> folder."""

    root: Path
    uploaded: dict[str, Path] = field(default_factory=dict)

    def upload(self, name: str, path: Path) -> None:
        target = self.root / name
        shutil.copytree(path, target, dirs_exist_ok=True)
        self.uploaded[name] = target

    def download(self, into: Path, name: str | None = None, pattern: str | None = None) -> None:
        if name is not None:
            if name not in self.uploaded:
                raise StepFailed(f"download-artifact: no artifact named {name!r} in this run")
            shutil.copytree(self.uploaded[name], into, dirs_exist_ok=True)
            return
        regex = re.compile(re.escape(pattern or "*").replace(r"\*", ".*") + "$")
        for found, folder in self.uploaded.items():
            if regex.match(found):
                shutil.copytree(folder, into / found, dirs_exist_ok=True)  # one folder per artifact, as v4 does


class StepFailed(Exception):
    pass


@dataclass
class JobResult:
    result: str  # "success" or "failure"
    outputs: dict[str, str]
    log: list[str]
    summary: str


def lookup(expression: str, contexts: dict[str, Any]) -> str:
    """A dotted context path (``steps.class.outputs.artifact``); absent values are empty strings."""
    value: Any = contexts
    for part in expression.strip().split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value)


def substitute(text: str, contexts: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda match: lookup(match.group(1), contexts), text)


def condition(text: str, contexts: dict[str, Any], workdir: Path, failed: bool) -> bool:
    """An ``if``: without always(), a step runs only while nothing failed."""
    text = EXPRESSION.sub(lambda match: match.group(1), text)
    terms = [term.strip() for term in text.split("&&") if term.strip()]
    if "always()" not in terms and failed:
        return False
    for term in terms:
        if term == "always()":
            continue
        hashed = re.fullmatch(r"hashFiles\('([^']+)'\)\s*(==|!=)\s*''", term)
        if hashed:
            exists = (workdir / hashed.group(1)).exists()
            if exists != (hashed.group(2) == "!="):
                return False
            continue
        compared = re.fullmatch(r"([\w.-]+)\s*(==|!=)\s*'([^']*)'", term)
        if not compared:
            raise ValueError(f"actions_replay: cannot evaluate the condition {term!r}")
        equal = lookup(compared.group(1), contexts) == compared.group(3)
        if equal != (compared.group(2) == "=="):
            return False
    return True


def run_job(job: dict[str, Any], workdir: Path, contexts: dict[str, Any], artifacts: Artifacts) -> JobResult:
    """Every step of ``job`` in ``workdir``; returns the job's result, outputs, log and summary."""
    steps_context: dict[str, Any] = {}
    contexts = {**contexts, "steps": steps_context}
    summary = workdir / ".step-summary.md"
    summary.write_text("")
    failed, log = False, []
    for step in job["steps"]:
        label = step.get("name") or step.get("uses") or step.get("run", "")[:40]
        if not condition(step.get("if", ""), contexts, workdir, failed):
            log.append(f"skipped: {label}")
            continue
        try:
            if "uses" in step:
                _action(step, workdir, contexts, artifacts)
            elif step["run"].lstrip().startswith("scripts/bootstrap.sh"):
                log.append(f"installed already: {label}")
                continue
            else:
                outputs = _run(step, workdir, contexts, summary)
                if "id" in step:
                    steps_context[step["id"]] = {"outputs": outputs}
            log.append(f"ok: {label}")
        except StepFailed as error:
            failed = True
            log.append(f"FAILED: {label}: {error}")
    outputs = {name: substitute(value, contexts) for name, value in job.get("outputs", {}).items()}
    return JobResult("failure" if failed else "success", outputs, log, summary.read_text())


def _action(step: dict[str, Any], workdir: Path, contexts: dict[str, Any], artifacts: Artifacts) -> None:
    action = step["uses"].split("@")[0]
    given = {key: substitute(str(value), contexts) for key, value in step.get("with", {}).items()}
    if action in ("actions/checkout", "actions/setup-python"):
        return
    if action == "actions/upload-artifact":
        path = workdir / given["path"]
        if path.exists():
            artifacts.upload(given["name"], path)
        return
    if action == "actions/download-artifact":
        artifacts.download(workdir / given.get("path", "."), given.get("name"), given.get("pattern"))
        return
    raise ValueError(f"actions_replay: no stand-in for the action {action!r}")


def _run(step: dict[str, Any], workdir: Path, contexts: dict[str, Any], summary: Path) -> dict[str, str]:
    output = workdir / ".step-output"
    output.write_text("")
    env = {
        **os.environ,
        **{key: substitute(str(value), contexts) for key, value in step.get("env", {}).items()},
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    script = substitute(step["run"], contexts)
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=workdir, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise StepFailed(f"exit {done.returncode}: {(done.stdout + done.stderr).strip()[-600:]}")
    pairs = (line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return dict(pairs)
