"""``perfgate compare --explain N``: a confirmed speed regression profiled op by op as this run's code
against the good run's, each side in its own worker.

The good run is the latest history run the case was compared with; its fingerprint names the commit it
measured (``records/source.py``). A side whose commit is not this checkout's HEAD is checked out in a
temporary ``git worktree`` (fetched first where a shallow clone lacks it); its worker imports that
checkout first: the paths this project imports from inside its repository, mapped into the worktree,
so its conftest, its techniques and its modules are that commit's. perfgate itself is this
environment's on both sides: the instrument stays fixed (a change in perfgate's own code is ``perfgate
bisect --git``'s to find). Each side resolves the case as its own suite does (bisect's probe) and holds
the case's technique on the same inputs; the parent alternates profiled blocks between the two live
workers round by round, as the upgrade gates alternate timed ones, so both share the moment's load.
Then ``explain.diff``, the good code as the baseline.

Nothing is profiled where code cannot be set against code, and the case says why: the same commit (the
machine or the libraries changed), no commit recorded (a run outside git), a commit that cannot be
checked out. Only confirmed speed regressions of forward cases are explained, the worst ``count``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfgate.answers.arms import SOURCE_ROOT, Arm, ArmWorkers
from perfgate.answers.explain import SIDES, Explanation, diff, markdown
from perfgate.errors import ArmFailed, PerfgateError
from perfgate.instruments.profiling import OpTimes, alternate_rounds, from_json
from perfgate.records.history import runner_class
from perfgate.records.regressions import CaseComparison, Comparison, Status
from perfgate.records.results import RunRecord

__all__ = ["RegressionExplainer", "explainable", "why_not_code"]


def explainable(comparison: Comparison, current: RunRecord) -> list[CaseComparison]:
    """The confirmed regressions whose speedup fell, of cases that time a forward (what a held arm
    runs), the largest fall first."""
    scenarios = {case.spec.case_id: case.spec.scenario for case in current.cases}
    found = []
    for case in comparison.cases:
        if case.status != Status.REGRESSION or case.confirmed is not True:
            continue
        speed = next((f for f in case.figures if f.name == "speedup" and f.status == Status.REGRESSION), None)
        if speed is not None and scenarios.get(case.case_id) == "ab-forward":
            found.append((speed.current / speed.reference, case))
    return [case for _, case in sorted(found, key=lambda pair: pair[0])]


def why_not_code(current: RunRecord, good: RunRecord | None) -> str | None:
    """Why this run's code cannot be profiled against the good run's, or None where it can."""
    if good is None:
        return "no good run in the history to set it against"
    mine, theirs = current.fingerprint.get("source") or {}, good.fingerprint.get("source") or {}
    recorded = "a run recorded before perfgate recorded its commit"
    if not theirs.get("commit"):
        return f"the good run ({good.started}) recorded no commit: {theirs.get('why', recorded)}"
    if not mine.get("commit"):
        return f"this run recorded no commit: {mine.get('why', recorded)}"
    if theirs["commit"] == mine["commit"] and not mine.get("dirty"):
        changed = library_changes(current, good)
        cause = f"the libraries changed ({changed}): `perfgate bisect --package` names the release" if changed else (
            "neither did the libraries: the machine or its load did"
        )  # fmt: skip
        return f"the good run measured the same commit ({mine['commit'][:12]}); {cause}"
    return None


def library_changes(current: RunRecord, good: RunRecord) -> str:
    mine, theirs = current.fingerprint.get("libraries", {}), good.fingerprint.get("libraries", {})
    names = sorted(name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name))
    return ", ".join(f"{name} {theirs.get(name)} -> {mine.get(name)}" for name in names)


def _git(directory: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *arguments], cwd=directory, capture_output=True, text=True, check=False)


@dataclass
class RegressionExplainer:
    """Profiles the worst ``count`` explainable regressions (``explain``); traces go under ``out``."""

    count: int
    out: Path
    directory: Path  # this checkout's project directory, where ``compare`` runs (as ``--confirm`` does)
    rounds: int = 8
    calls: int = 10
    python: str = sys.executable
    log: Callable[[str], None] = print

    def explain(self, comparison: Comparison, current: RunRecord) -> list[str]:
        """Each chosen case's diff (or why there is none) kept in ``case.explanation``; a line per case."""
        lines = []
        for case in explainable(comparison, current)[: self.count]:
            started = time.monotonic()
            reason = why_not_code(current, case.good_run)
            if reason is None:
                try:
                    explanation = self._profile(case, current)
                except (PerfgateError, ArmFailed) as error:
                    reason = str(error)
            if reason is not None:
                case.explanation = {"why": reason, "seconds": time.monotonic() - started}
                lines.append(f"{case.case_id}: not explained: {reason}")
            else:
                hardware = runner_class(current.fingerprint.get("hardware_class", {}))
                case.explanation = {**explanation.to_dict(), "markdown": markdown(explanation, hardware)}
                lines.append(f"{case.case_id}: explained in {explanation.seconds:.0f} s")
            self.log(lines[-1])
        return lines

    def _profile(self, case: CaseComparison, current: RunRecord) -> Explanation:
        from perfgate.answers.bisect import parse_case_id

        good = case.good_run
        if good is None:
            raise PerfgateError("no good run in the history to set it against")
        started = time.monotonic()
        target = parse_case_id(case.case_id)
        spec = next(c.spec for c in current.cases if c.spec.case_id == case.case_id)
        commits = {"baseline": good.fingerprint["source"]["commit"],
                   "candidate": current.fingerprint["source"]["commit"]}  # fmt: skip
        found = _git(self.directory, "rev-parse", "--show-toplevel")
        if found.returncode != 0:
            raise PerfgateError(f"{self.directory} is not a git checkout: {found.stderr.strip()}")
        top = Path(found.stdout.strip()).resolve()
        head = _git(top, "rev-parse", "HEAD").stdout.strip()
        out = self.out / case.case_id.replace("/", "_")
        out.mkdir(parents=True, exist_ok=True)
        relative = self.directory.resolve().relative_to(top)
        with tempfile.TemporaryDirectory(prefix="perfgate-explain-") as scratch:
            checkouts: dict[str, Path] = {}
            try:
                for side in SIDES:
                    if side == "candidate" and commits[side] == head:
                        checkouts[side] = top  # this run's code as it stands, caches and all
                    else:
                        checkouts[side] = self._check_out(top, commits[side], Path(scratch) / side)
                resolved = {side: self._arm(side, target, top, checkouts[side], relative) for side in SIDES}
                arms = {side: arm for side, (arm, _) in resolved.items()}
                texts = resolved["candidate"][1]["timed_texts"]  # both sides time the same inputs
                samples = self._alternate(arms, spec, texts, Path(scratch), out)
            finally:
                for checkout in checkouts.values():
                    if checkout != top:
                        _git(top, "worktree", "remove", "--force", str(checkout))
        explanation = diff(case.case_id, samples, self.calls)
        explanation.seconds = time.monotonic() - started
        explanation.traces = {side: str(out / f"{side}.trace.json") for side in SIDES}
        explanation.baseline = f"good {commits['baseline'][:12]}"
        explanation.candidate = f"now {commits['candidate'][:12]}"
        return explanation

    def _arm(self, side: str, target: Any, top: Path, checkout: Path, relative: Path) -> tuple[Arm, dict[str, Any]]:
        """The case as the side's own suite resolves it (its conftest's models and techniques)."""
        from perfgate.answers.bisect import probe_case

        project = checkout / relative
        probe = probe_case(target, project, self.python)
        paths = import_paths(top, checkout, project)
        arm = Arm(side, target.model, Path(probe["location"]), probe["task"], probe["technique_path"], self.python,
                  paths, project)  # fmt: skip
        return arm, probe

    @staticmethod
    def _check_out(top: Path, commit: str, worktree: Path) -> Path:
        """``commit`` in a worktree; a shallow clone (CI's default checkout) fetches it first."""
        if _git(top, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
            fetched = _git(top, "fetch", "--quiet", "--depth", "1", "origin", commit)
            if fetched.returncode != 0:
                raise PerfgateError(
                    f"commit {commit[:12]} is not in this clone and could not be fetched "
                    f"({fetched.stderr.strip()[-200:]}); check out with history (actions/checkout: fetch-depth: 0)"
                )
        added = _git(top, "worktree", "add", "--detach", "--quiet", str(worktree), commit)
        if added.returncode != 0:
            raise PerfgateError(f"commit {commit[:12]} could not be checked out: {added.stderr.strip()}")
        return worktree

    def _alternate(
        self, arms: dict[str, Arm], spec: Any, texts: list[str], scratch: Path, out: Path
    ) -> dict[str, list[OpTimes]]:
        workers = ArmWorkers(arms, rootdir=self.directory)
        payload = {
            "device": spec.device, "threads": spec.threads, "seq_len": spec.seq_len, "workdir": str(scratch / "work"),
            "timed_texts": texts, "eval_texts": [], "score": False, "labelled": None, "runtime_profile": True,
        }  # fmt: skip
        try:
            workers.prepare(payload)
            for side in SIDES:
                workers.warm_up(side)

            def block(side: str) -> Callable[[bool], OpTimes]:
                def profiled(last: bool) -> OpTimes:
                    trace = out / f"{side}.trace.json" if last else None
                    return from_json([workers.profile_block(side, self.calls, trace)])[0]

                return profiled

            found = alternate_rounds({side: block(side) for side in SIDES}, self.rounds)
            for side in SIDES:
                runtime = workers.end_profile(side, self.rounds, self.calls)
                for per_op, nodes in zip(found[side], from_json(runtime or [{}] * self.rounds), strict=True):
                    per_op.update(nodes)  # an ONNX Runtime session's own nodes beside the torch ops around it
        finally:
            workers.close()
        return found


def import_paths(top: Path, checkout: Path, project: Path) -> tuple[str, ...] | None:
    """What a side's worker imports from: None for this checkout (the project's own path); for another
    checkout, its project directory first, then this interpreter's path with every entry inside this
    repository mapped to the same place in the checkout, but perfgate's own source (the instrument)."""
    if checkout == top:
        return None
    mapped = [str(project)]
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        inside = path.is_relative_to(top) and not path.is_relative_to(SOURCE_ROOT)
        mapped.append(str(checkout / path.relative_to(top)) if inside else entry)
    return tuple(dict.fromkeys(mapped))
