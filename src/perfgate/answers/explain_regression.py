"""``perfgate compare --explain N``: a confirmed speed regression profiled op by op as this run's code and
libraries against the good run's, each side in its own worker.

The good run is the latest history run the case was compared with; its fingerprint names the commit it
measured (``records/source.py``) and its libraries' versions. A changed commit is checked out in a
temporary ``git worktree`` (fetched first where a shallow clone lacks it); its worker runs there and
imports that checkout first: the paths this project imports from inside its repository, mapped into the
worktree, so its conftest, its techniques and its modules are that commit's. Changed libraries are
served at the good run's versions by an overlay environment over this one (``subjects/environments.py``,
as ``perfgate bisect --package`` builds one). perfgate itself is this environment's on both sides: the
instrument stays fixed. Each side resolves the case as its own suite does (bisect's probe) and holds the
case's technique on the same inputs; the parent alternates profiled blocks between the two live workers
round by round, as the upgrade gates alternate timed ones, so both share the moment's load. Then
``explain.diff``, the good side as the baseline.

Nothing is profiled where nothing changed, and the case says why: the same commit and libraries (the
machine or its load changed), no commit recorded (a run outside git), a commit that cannot be checked
out. Only confirmed speed regressions of forward cases are explained, the worst ``count``.
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

__all__ = ["Change", "RegressionExplainer", "change_between", "explainable", "import_paths"]


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


@dataclass(frozen=True)
class Change:
    """What differs between the good run and this one, as their fingerprints say: the commit (both
    recorded and different, or this tree changed beyond its commit) and the libraries' versions."""

    commits: tuple[str, str] | None  # (good, this)
    libraries: dict[str, tuple[str, str | None]]  # name -> (the good run's version, this run's)

    @property
    def labels(self) -> tuple[str, str]:
        """How the diff names its two sides: ``good 28f4a4e838ab (torch 2.9.0)`` and ``now ...``."""
        sides = []
        for index, word in enumerate(("good", "now")):
            parts = [self.commits[index][:12]] if self.commits else []
            parts += [f"{name} {versions[index]}" for name, versions in sorted(self.libraries.items())]
            sides.append(f"{word} {parts[0]}" + (f" ({', '.join(parts[1:])})" if parts[1:] else ""))
        return sides[0], sides[1]


def change_between(current: RunRecord, good: RunRecord | None) -> Change | str:
    """What this run changed against the good run, or why nothing can be profiled against it."""
    if good is None:
        return "no good run in the history to set it against"
    mine, theirs = current.fingerprint.get("source") or {}, good.fingerprint.get("source") or {}
    ours, others = current.fingerprint.get("libraries", {}), good.fingerprint.get("libraries", {})
    # A library the good run lacked cannot be taken away from an overlay: both sides keep this one's.
    libraries = {name: (others[name], ours.get(name)) for name in sorted(others) if others[name] != ours.get(name)}
    commits = None
    if mine.get("commit") and theirs.get("commit") and (theirs["commit"] != mine["commit"] or mine.get("dirty")):
        commits = (str(theirs["commit"]), str(mine["commit"]))
    if commits or libraries:
        return Change(commits, libraries)
    recorded = "a run recorded before perfgate recorded its commit"
    if not theirs.get("commit"):
        return (
            f"the good run ({good.started}) recorded no commit ({theirs.get('why', recorded)}) and the same libraries"
        )
    if not mine.get("commit"):
        return f"this run recorded no commit ({mine.get('why', recorded)}) and the same libraries"
    return (f"the good run measured the same commit ({mine['commit'][:12]}) with the same libraries: the machine "
            "or its load changed")  # fmt: skip


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
    python: str = sys.executable  # this run's environment
    index_options: tuple[str, ...] = ()  # pip's, for the overlay serving the good run's library versions
    log: Callable[[str], None] = print

    def explain(self, comparison: Comparison, current: RunRecord) -> list[str]:
        """Each chosen case's diff (or why there is none) kept in ``case.explanation``; a line per case."""
        lines = []
        for case in explainable(comparison, current)[: self.count]:
            started = time.monotonic()
            change = change_between(current, case.good_run)
            reason = change if isinstance(change, str) else None
            if isinstance(change, Change):
                try:
                    explanation = self._profile(case, current, change)
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

    def _profile(self, case: CaseComparison, current: RunRecord, change: Change) -> Explanation:
        from perfgate.answers.bisect import parse_case_id

        started = time.monotonic()
        target = parse_case_id(case.case_id)
        spec = next(c.spec for c in current.cases if c.spec.case_id == case.case_id)
        top = self.directory.resolve()
        if change.commits:
            found = _git(self.directory, "rev-parse", "--show-toplevel")
            if found.returncode != 0:
                raise PerfgateError(f"{self.directory} is not a git checkout: {found.stderr.strip()}")
            top = Path(found.stdout.strip()).resolve()
        out = self.out / case.case_id.replace("/", "_")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="perfgate-explain-") as scratch:
            checkouts = dict.fromkeys(SIDES, top)
            pythons = {"baseline": self._good_libraries(change, Path(scratch)), "candidate": self.python}
            try:
                if change.commits:
                    head = _git(top, "rev-parse", "HEAD").stdout.strip()
                    for side, commit in zip(SIDES, change.commits, strict=True):
                        if side == "baseline" or commit != head:  # this run's code as it stands, caches and all
                            checkouts[side] = self._check_out(top, commit, Path(scratch) / side)
                relative = self.directory.resolve().relative_to(top)
                resolved = {side: self._arm(side, target, top, checkouts[side], relative, pythons[side])
                            for side in SIDES}  # fmt: skip
                arms = {side: arm for side, (arm, _) in resolved.items()}
                texts = resolved["candidate"][1]["timed_texts"]  # both sides time the same inputs
                samples = self._alternate(arms, spec, texts, Path(scratch), out)
            finally:
                for checkout in set(checkouts.values()) - {top}:
                    _git(top, "worktree", "remove", "--force", str(checkout))
        explanation = diff(case.case_id, samples, self.calls)
        explanation.seconds = time.monotonic() - started
        explanation.traces = {side: str(out / f"{side}.trace.json") for side in SIDES}
        explanation.baseline, explanation.candidate = change.labels
        return explanation

    def _good_libraries(self, change: Change, scratch: Path) -> str:
        """This environment, or an overlay over it serving the good run's versions of the libraries that
        changed (``environments.py``, as ``perfgate bisect --package`` builds one per release)."""
        if not change.libraries:
            return self.python
        from perfgate.subjects.environments import install_into, overlay_environment

        python = overlay_environment(scratch / "good-libraries")
        for name, (version, _) in change.libraries.items():
            install_into(python, f"{name}=={version}", self.index_options)
        return str(python)

    def _arm(
        self, side: str, target: Any, top: Path, checkout: Path, relative: Path, python: str
    ) -> tuple[Arm, dict[str, Any]]:
        """The case as the side's own suite resolves it (its conftest's models and techniques)."""
        from perfgate.answers.bisect import probe_case

        project = checkout / relative
        # resolved by its checkout's own suite, under its own interpreter (an overlay imports perfgate from here)
        probe = probe_case(target, project, python, pythonpath=() if python == sys.executable else (str(SOURCE_ROOT),))
        paths = import_paths(top, checkout, project, overlay=python != self.python)
        arm = Arm(side, target.model, Path(probe["location"]), probe["task"], probe["technique_path"], python,
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
                    return from_json([workers.profile_block(side, self.calls, trace, spec.device)])[0]

                return profiled

            found = alternate_rounds({side: block(side) for side in SIDES}, self.rounds)
            for side in SIDES:
                runtime = workers.end_profile(side, self.rounds, self.calls)
                for per_op, nodes in zip(found[side], from_json(runtime or [{}] * self.rounds), strict=True):
                    per_op.update(nodes)  # an ONNX Runtime session's own nodes beside the torch ops around it
        finally:
            workers.close()
        return found


def import_paths(top: Path, checkout: Path, project: Path, overlay: bool = False) -> tuple[str, ...] | None:
    """What a side's worker imports from: None for this checkout in this environment (the project's own
    path). Otherwise its project directory first, then this interpreter's path with every entry inside
    this repository mapped to the same place in the checkout, but perfgate's own source (the
    instrument). Under an overlay, only those entries: its own site-packages and the ones beneath it
    must not be shadowed by this environment's."""
    if checkout == top and not overlay:
        return None
    mapped = [str(project)]
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if path.is_relative_to(top) and not path.is_relative_to(SOURCE_ROOT):
            mapped.append(str(checkout / path.relative_to(top)))
        elif not overlay:
            mapped.append(entry)
    if overlay:
        mapped.append(str(SOURCE_ROOT))
    return tuple(dict.fromkeys(mapped))
