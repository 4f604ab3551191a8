"""Runs a GitHub Actions workflow's own jobs and steps on disk, as runners would, so a workflow is tested
as written.

Covers what perfgate's workflows use, with Actions' semantics:

- jobs in ``needs`` order, a job's ``if`` with the ``needs`` context (a job without one runs only when
  every job it needs succeeded), ``strategy.matrix`` legs (one workspace each; the job's result is the
  worst leg's), job ``outputs``;
- ``run`` steps through ``bash -e -o pipefail`` with the step's ``env`` (``${{ ... }}`` looked up in the
  contexts: ``github``, ``inputs``, ``vars``, ``matrix``, ``needs``, ``steps``), ``$GITHUB_OUTPUT``,
  ``$GITHUB_STEP_SUMMARY``, step ``outputs``, ``outcome`` and ``conclusion``, ``continue-on-error``;
- ``if`` conditions made of the status functions ``success()``, ``failure()``, ``always()``,
  ``cancelled()`` (each may be negated with ``!``), ``hashFiles('path') == ''`` / ``!= ''`` and
  comparisons of context values with string literals, joined by ``&&``; a step or job whose ``if`` names
  no status function runs only while nothing failed and the run was not cancelled;
- a cancel (``Interruptions.cancel_at``): the step running is stopped, later steps and jobs run only
  when their ``if`` says ``always()`` or ``cancelled()``; a runner lost (``Interruptions.die_at``): the
  job ends there, failed, with nothing after;
- artifacts (``Artifacts``): upload-artifact v4 (no hidden files, a second upload of one name is an
  error, an absent path only warns), download-artifact v4 by name (absent: an error) or by pattern (a
  folder per artifact).

Actions that set up the machine (checkout, setup-python) and ``scripts/bootstrap.sh`` steps are the
caller's: its workspace comes with them.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
STATUS = re.compile(r"(!?)\s*(success|failure|always|cancelled)\(\)")


@dataclass
class Artifacts:
    """This workflow run's uploads: artifact name -> folder (and its retention in days)."""

    root: Path
    uploaded: dict[str, Path] = field(default_factory=dict)
    retention: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def upload(self, name: str, path: Path, retention_days: int = 90) -> str:
        with self.lock:
            return self._upload(name, path, retention_days)

    def _upload(self, name: str, path: Path, retention_days: int) -> str:
        if name in self.uploaded:
            raise StepFailed(f"upload-artifact: Failed to CreateArtifact: an artifact with the name {name!r} "
                             "already exists on this workflow run")  # fmt: skip
        if not path.exists():
            return f"warning: No files were found with the provided path: {path}. No artifacts will be uploaded."
        target = self.root / name
        # v4.4 and later leave out hidden files unless include-hidden-files is set
        shutil.copytree(path, target, ignore=lambda _, names: [n for n in names if n.startswith(".")])
        self.uploaded[name] = target
        self.retention[name] = retention_days
        return f"uploaded {name}"

    def download(self, into: Path, name: str | None = None, pattern: str | None = None) -> None:
        if name:
            if name not in self.uploaded:
                raise StepFailed(f"download-artifact: Unable to download artifact(s): Artifact not found for name: "
                                 f"{name}")  # fmt: skip
            shutil.copytree(self.uploaded[name], into, dirs_exist_ok=True, copy_function=_link)
            return
        for found, folder in self.uploaded.items():
            if fnmatch.fnmatchcase(found, pattern or "*"):
                shutil.copytree(folder, into / found, dirs_exist_ok=True, copy_function=_link)  # a folder each, as v4


def _link(source: str, target: str) -> None:
    """Downloads as hard links: an uploaded artifact is never written again, and steps that change a
    downloaded file replace it (perfgate writes atomically), so no step sees another's change."""
    os.link(source, target)


class StepFailed(Exception):
    pass


@dataclass
class Interruptions:
    """What stops a run midway: a cancel during a job's step (every leg of it: a cancel stops the whole run),
    or a runner lost during one leg's step, keyed (job, matrix value or None, step name)."""

    cancel_at: tuple[str, str] | None = None
    die_at: set[tuple[str, Any, str]] = field(default_factory=set)
    # Steps a long replay leaves out on some nights because they only render what others wrote (the HTML
    # report): logged as such, no outputs; every other step always runs.
    not_replayed: set[str] = field(default_factory=set)


@dataclass
class JobResult:
    result: str  # "success", "failure", "cancelled" or "skipped"
    outputs: dict[str, str]
    log: list[str]
    summary: str


@dataclass
class RunResult:
    conclusion: str  # the run's: "success", "failure" or "cancelled"
    jobs: dict[str, list[JobResult]]  # a job's legs (one unless it has a matrix)

    def summary(self, job: str) -> str:
        return "".join(leg.summary for leg in self.jobs.get(job, []))

    def result(self, job: str) -> str:
        return _worst([leg.result for leg in self.jobs.get(job, [])])


def lookup(expression: str, contexts: dict[str, Any]) -> str:
    """A dotted context path (``steps.class.outputs.artifact``); absent values are empty strings."""
    value: Any = contexts
    for part in expression.strip().split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return str(value)


def substitute(text: str, contexts: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda match: lookup(match.group(1), contexts), text)


def condition(text: str, contexts: dict[str, Any], workdir: Path, failed: bool, cancelled: bool = False) -> bool:
    """An ``if``: without a status function, it runs only while nothing failed and nothing was cancelled."""
    text = str(text or "").strip()
    whole = EXPRESSION.fullmatch(text)
    text = whole.group(1) if whole else text
    terms = [term.strip() for term in text.split("&&") if term.strip()]
    status = {"success": not failed and not cancelled, "failure": failed and not cancelled, "always": True,
              "cancelled": cancelled}  # fmt: skip
    if not any(STATUS.fullmatch(term) for term in terms) and not status["success"]:
        return False
    for term in terms:
        function = STATUS.fullmatch(term)
        if function:
            if status[function.group(2)] == bool(function.group(1)):
                return False
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


def run_job(
    job: dict[str, Any], workdir: Path, contexts: dict[str, Any], artifacts: Artifacts,
    interruptions: Interruptions | None = None, where: tuple[str, Any] = ("", None),
) -> JobResult:  # fmt: skip
    """Every step of ``job`` in ``workdir``; returns the job's result, outputs, log and summary."""
    interruptions = interruptions or Interruptions()
    steps_context: dict[str, Any] = {}
    contexts = {**contexts, "steps": steps_context}
    summaries: list[str] = []
    failed = cancelled = False
    log: list[str] = []
    for step in job["steps"]:
        label = step.get("name") or step.get("uses") or step.get("run", "")[:40]
        key = (*where, label)
        if not condition(step.get("if", ""), contexts, workdir, failed, cancelled):
            log.append(f"skipped: {label}")
            if "id" in step:
                steps_context[step["id"]] = {"outputs": {}, "outcome": "skipped", "conclusion": "skipped"}
            continue
        if key in interruptions.die_at:
            log.append(f"runner lost during: {label}")
            return JobResult("failure", {}, log, "".join(summaries))
        if interruptions.cancel_at == (where[0], label):
            cancelled = True
            log.append(f"cancelled during: {label}")
            continue
        if label in interruptions.not_replayed:
            log.append(f"not replayed tonight: {label}")
            continue
        outcome, outputs = "success", {}
        started = time.perf_counter()
        try:
            if "uses" in step:
                log.append(_action(step, workdir, contexts, artifacts))
            elif step["run"].lstrip().startswith(("scripts/bootstrap.sh", "PINS=")):
                log.append(f"installed already: {label}")
                continue
            else:
                code, outputs, summary, text = _run(step, workdir, contexts)
                summaries.append(summary)  # a failing step's summary and outputs count too
                if code != 0:
                    raise StepFailed(f"exit {code}: {text}")
            log.append(f"ok: {label}")
            if os.environ.get("REPLAY_TIMING"):
                print(f"{time.perf_counter() - started:6.3f} {label}")
        except StepFailed as error:
            outcome = "failure"
            log.append(f"FAILED: {label}: {error}")
        conclusion = "success" if step.get("continue-on-error") is True else outcome
        failed = failed or conclusion == "failure"
        if "id" in step:
            steps_context[step["id"]] = {"outputs": outputs, "outcome": outcome, "conclusion": conclusion}
    outputs = {name: substitute(value, contexts) for name, value in job.get("outputs", {}).items()}
    result = "cancelled" if cancelled else "failure" if failed else "success"
    return JobResult(result, outputs, log, "".join(summaries))


def _worst(results: list[str]) -> str:
    for result in ("cancelled", "failure", "success"):
        if result in results:
            return result
    return "skipped"


def run_workflow(
    workflow: dict[str, Any], workspace: Callable[[str, Any], Path], contexts: dict[str, Any],
    artifacts: Artifacts, interruptions: Interruptions | None = None,
) -> RunResult:  # fmt: skip
    """Every job in ``needs`` order, each leg in a fresh workspace from ``workspace(job, leg)``."""
    interruptions = interruptions or Interruptions()
    jobs: dict[str, list[JobResult]] = {}
    needs_context: dict[str, Any] = {}
    cancelled = False
    for name in _ordered(workflow["jobs"]):
        job = workflow["jobs"][name]
        needed = [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
        failed = any(needs_context[n]["result"] in ("failure", "cancelled", "skipped") for n in needed)
        scope = {**contexts, "needs": {n: needs_context[n] for n in needed}}
        if not condition(job.get("if", ""), scope, Path("."), failed, cancelled):
            jobs[name] = [JobResult("skipped", {}, [f"skipped: job {name}"], "")]
        else:
            legs = job.get("strategy", {}).get("matrix", {})
            matrix = [{k: v} for k, values in legs.items() for v in values] or [{}]

            def leg_run(leg: dict[str, Any], name: str = name, job: dict[str, Any] = job,
                        scope: dict[str, Any] = scope) -> JobResult:  # fmt: skip
                value = next(iter(leg.values()), None)
                leg_scope = {**scope, "matrix": leg}
                return run_job(_with_matrix(job, leg_scope), workspace(name, value), leg_scope, artifacts,
                               interruptions, (name, value))  # fmt: skip

            with ThreadPoolExecutor(max_workers=len(matrix)) as pool:  # a matrix's legs run at once, as on runners
                jobs[name] = list(pool.map(leg_run, matrix))
            cancelled = cancelled or any(result.result == "cancelled" for result in jobs[name])
        results = [leg.result for leg in jobs[name]]
        outputs = {k: v for leg in jobs[name] for k, v in leg.outputs.items() if v}
        needs_context[name] = {"result": _worst(results), "outputs": outputs}
    every = [leg.result for legs in jobs.values() for leg in legs]
    conclusion = "cancelled" if cancelled else "failure" if "failure" in every else "success"
    return RunResult(conclusion, jobs)


def _ordered(jobs: dict[str, Any]) -> list[str]:
    done: list[str] = []
    while len(done) < len(jobs):
        for name, job in jobs.items():
            needed = [job["needs"]] if isinstance(job.get("needs"), str) else job.get("needs", [])
            if name not in done and all(n in done for n in needed):
                done.append(name)
    return done


def _with_matrix(job: dict[str, Any], contexts: dict[str, Any]) -> dict[str, Any]:
    """The job's ``with`` values of artifact steps, matrix values substituted (names like shard-${{ matrix.shard }})."""
    steps = [
        {**step, "with": {k: substitute(str(v), contexts) for k, v in step["with"].items()}} if "with" in step else step
        for step in job["steps"]
    ]
    return {**job, "steps": steps}


def _action(step: dict[str, Any], workdir: Path, contexts: dict[str, Any], artifacts: Artifacts) -> str:
    action = step["uses"].split("@")[0]
    given = {key: substitute(str(value), contexts) for key, value in step.get("with", {}).items()}
    if action in ("actions/checkout", "actions/setup-python"):
        return f"the workspace has it: {action}"
    if action == "actions/upload-artifact":
        return artifacts.upload(given["name"], workdir / given["path"], int(given.get("retention-days", 90)))
    if action == "actions/download-artifact":
        artifacts.download(workdir / given.get("path", "."), given.get("name"), given.get("pattern"))
        return f"downloaded {given.get('name') or given.get('pattern')}"
    raise ValueError(f"actions_replay: no stand-in for the action {action!r}")


def _run(step: dict[str, Any], workdir: Path, contexts: dict[str, Any]) -> tuple[int, dict[str, str], str, str]:
    output, summary = workdir / ".step-output", workdir / ".step-summary.md"
    output.write_text("")
    summary.write_text("")
    env = {
        **os.environ,
        **{key: substitute(str(value), contexts) for key, value in step.get("env", {}).items()},
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    script = substitute(step["run"], contexts)
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=workdir, env=env,
                          capture_output=True, text=True, check=False)  # fmt: skip
    pairs = (line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done.returncode, dict(pairs), summary.read_text(), (done.stdout + done.stderr).strip()[-900:]
