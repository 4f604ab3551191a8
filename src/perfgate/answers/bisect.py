"""``perfgate bisect``: from a confirmed regression to the release or commit that caused it.

Two modes, one rule: each step is decided by a same-process interval, and a step the interval cannot
decide is said, not guessed.

- **Library releases** (``bisect_releases``): the versions between GOOD and BAD as pip lists them, one
  overlay environment per version measured (``environments.py``), each gated against GOOD's with the
  library-upgrade gate's speed check (the case's technique in both environments, interleaved ABBA over
  fresh pairs of workers). BAD is confirmed first; an INCONCLUSIVE step is measured once more with a
  doubled budget, then skipped and said; a release that will not install or import is skipped and said.
- **Commits** (``bisect_commits``): GOOD measured three times (the case's speedup against fp32, in a
  fresh pytest run each) forms a band; ``git bisect run`` in a temporary ``git worktree`` then measures
  each step the same way and judges it against the band (``python -m perfgate.answers.bisect step``):
  wholly below the band's slowdown line is bad (exit 1), wholly above it good (0), straddling it
  measured once more with twice the budget, then ``git bisect skip`` (125). A ratio against fp32 misses
  a change that slows fp32 as much as the technique.

Both assume one change point between GOOD and BAD and say so in the answer.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.errors import ConfigError, PerfgateError

__all__ = ["BisectResult", "CaseTarget", "Step", "bisect_commits", "bisect_releases", "parse_case_id"]

ONE_CHANGE_POINT = (
    "assumed: one change point between good and bad (a regression that comes and goes, or two of them, "
    "can mislead a bisection)"
)
FIRST_BAD_COMMIT = " is the first bad commit"
SKIP, GOOD, BAD = 125, 0, 1  # git bisect run's exit codes


@dataclass(frozen=True)
class CaseTarget:
    """What a bisection measures, from a case id (``MODEL/TECHNIQUE/bN/DEVICE``)."""

    case_id: str
    model: str
    technique: str
    batch_size: int
    device: str


def parse_case_id(case_id: str) -> CaseTarget:
    """``minilm/bf16-cast/b8/cpu`` as results.json and the summary name a case; one clear error otherwise."""
    parts = case_id.split("/")
    if len(parts) < 4 or not parts[2].startswith("b"):
        raise ConfigError(
            f"--case {case_id!r} is not a case id: write MODEL/TECHNIQUE/bBATCH/DEVICE as results.json and "
            "the summary name it, e.g. minilm/bf16-cast/b8/cpu"
        )
    size = parts[2][1:].split("-s")[0]
    if not size.isdigit():
        raise ConfigError(f"--case {case_id!r}: {parts[2]!r} is not bBATCH (b8, b1-s128)")
    return CaseTarget(case_id, parts[0], parts[1], int(size), parts[3])


@dataclass
class Step:
    """One bisection step: what was measured, its verdict (good, bad, skipped) and the evidence."""

    label: str  # a version or a commit
    verdict: str
    evidence: str
    measurements: int = 1


@dataclass
class BisectResult:
    mode: str  # "package NAME" or "git"
    good: str
    bad: str
    first_bad: str | None
    steps: list[Step] = field(default_factory=list)
    candidates: int = 0  # releases or commits after good up to bad
    notes: list[str] = field(default_factory=list)

    @property
    def measurements(self) -> int:
        return sum(step.measurements for step in self.steps)

    def markdown(self) -> str:
        lines = [f"## perfgate bisect ({self.mode}): {self.good} good, {self.bad} bad", ""]
        if self.first_bad is not None:
            lines.append(f"**First bad: {self.first_bad}**, after {self.measurements} measurements "
                         f"({self.candidates} candidates after good).")  # fmt: skip
        else:
            lines.append(f"**No first bad found**, after {self.measurements} measurements.")
        lines += ["", "| step | verdict | evidence | measurements |", "|---|---|---|---|"]
        lines += [f"| {s.label} | {s.verdict} | {s.evidence} | {s.measurements} |" for s in self.steps]
        lines += ["", *[f"- {note}" for note in [*self.notes, ONE_CHANGE_POINT]]]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "good": self.good, "bad": self.bad, "first_bad": self.first_bad,
                "candidates": self.candidates, "measurements": self.measurements, "notes": self.notes,
                "assumption": ONE_CHANGE_POINT, "steps": [vars(s) for s in self.steps]}  # fmt: skip


def bisect_ordered(labels: Sequence[str], judge: Callable[[str], Step]) -> tuple[str | None, list[Step], list[str]]:
    """The first bad label in ``labels`` (first known good, last known bad), judging as few as a
    bisection needs; the last is confirmed first. A skipped label leaves the search; when one lies
    between the last good and the first bad found, the answer says it could be that one."""
    steps: list[Step] = []
    notes: list[str] = []
    remaining = list(labels)
    confirmation = judge(remaining[-1])
    steps.append(confirmation)
    if confirmation.verdict != "bad":
        notes.append(
            f"{remaining[-1]} is not slower than {remaining[0]} here ({confirmation.verdict}): nothing to bisect"
        )
        return None, steps, notes
    low, high = 0, len(remaining) - 1
    skipped: list[str] = []
    while high - low > 1:
        middle = (low + high) // 2
        step = judge(remaining[middle])
        steps.append(step)
        if step.verdict == "good":
            low = middle
        elif step.verdict == "bad":
            high = middle
        else:
            skipped.append(remaining.pop(middle))
            high -= 1
    order = {label: position for position, label in enumerate(labels)}
    between = [s for s in skipped if order[remaining[low]] < order[s] < order[remaining[high]]]
    if between:
        notes.append(f"{', '.join(between)} could not be judged: the first bad is {remaining[high]} or "
                     "one of them")  # fmt: skip
    return remaining[high], steps, notes


# --- library releases -----------------------------------------------------------------------------


@dataclass
class ReleaseBisection:
    """Everything a release bisection needs, checked before any environment is built."""

    package: str
    good: str
    bad: str
    target: CaseTarget
    probe: dict[str, Any]  # the case's model and technique as the project's suite resolves them
    workdir: Path
    index_options: list[str]
    import_name: str
    budget_seconds: float = 20.0
    max_slowdown: float = 0.10
    replicates: int | None = None
    log: Callable[[str], None] = print


def releases_between(versions: Sequence[str], good: str, bad: str, package: str) -> list[str]:
    """GOOD, the releases after it, and BAD, in order; a bound the index does not list is an error."""
    from packaging.version import Version

    for option, version in (("--good", good), ("--bad", bad)):
        if version not in versions:
            raise ConfigError(f"{option} {version!r}: the index lists no such release of {package} "
                              f"(it lists {', '.join(versions[-8:])})")  # fmt: skip
    if Version(good) >= Version(bad):
        raise ConfigError(f"--good {good} is not older than --bad {bad}")
    return sorted((v for v in versions if Version(good) <= Version(v) <= Version(bad)), key=Version)


def bisect_releases(plan: ReleaseBisection) -> BisectResult:
    from perfgate.subjects.environments import released_versions

    versions = releases_between(released_versions(plan.package, plan.index_options), plan.good, plan.bad,
                                plan.package)  # fmt: skip
    plan.log(f"perfgate bisect: {plan.package} {', '.join(versions)} ({len(versions) - 1} after {plan.good})")
    interpreters: dict[str, Path | str] = {}

    def environment(version: str) -> Path | str:
        if version not in interpreters:
            interpreters[version] = release_environment(plan, version)
        return interpreters[version]

    good_python = environment(plan.good)
    if isinstance(good_python, str):
        raise PerfgateError(f"--good {plan.good} cannot serve as the reference: {good_python}")

    def judge(version: str) -> Step:
        python = environment(version)
        if isinstance(python, str):
            plan.log(f"  {version}: skipped ({python})")
            return Step(version, "skipped", python, 0)
        measured = 0
        for budget in (plan.budget_seconds, 2 * plan.budget_seconds):
            check = _gate_speed(plan, Path(good_python), python, budget)
            measured += 1
            verdict = {"pass": "good", "fail": "bad"}.get(str(check["verdict"]), "")
            evidence = check["evidence"]
            if verdict:
                plan.log(f"  {version}: {verdict} ({evidence})")
                return Step(version, verdict, evidence, measured)
            plan.log(f"  {version}: inconclusive ({evidence}); measuring again with {2 * budget:.0f} s")
        plan.log(f"  {version}: skipped, inconclusive twice")
        return Step(version, "skipped", f"inconclusive twice: {evidence}", measured)

    first_bad, steps, notes = bisect_ordered(versions, judge)
    return BisectResult(f"package {plan.package}", plan.good, plan.bad, first_bad, steps, len(versions) - 1,
                        [*notes, f"each step: {plan.target.technique} on {plan.target.model} at batch "
                                 f"{plan.target.batch_size}, the version against {plan.good}, the library-upgrade "
                                 f"gate's speed check (at most {plan.max_slowdown:.0%} slower)"])  # fmt: skip


def release_environment(plan: ReleaseBisection, version: str) -> Path | str:
    """The interpreter of an overlay serving ``version`` of the package, or why none can (a string): pip
    could not install it, it does not import, or the overlay serves another version."""
    from perfgate.subjects.environments import install_into, overlay_environment

    python = overlay_environment(plan.workdir / "environments" / f"{plan.package}-{version}")
    try:
        install_into(python, f"{plan.package}=={version}", plan.index_options)
    except PerfgateError as error:
        return str(error)
    code = (f"import importlib.metadata, {plan.import_name}; "
            f"print(importlib.metadata.version({plan.package!r}))")  # fmt: skip
    check = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        return f"{plan.import_name} does not import: {(check.stderr.strip().splitlines() or ['no message'])[-1]}"
    served = check.stdout.strip()
    if served != version:
        return f"the overlay serves {plan.package} {served}, not {version}"
    return python


def _gate_speed(plan: ReleaseBisection, good: Path, candidate: Path, budget: float) -> dict[str, Any]:
    """The library-upgrade gate's speed check of ``candidate`` against ``good`` for the case."""
    from perfgate.answers.arms import Arm
    from perfgate.answers.upgrade import GatePolicy, GateRun, run_gate

    probe, target = plan.probe, plan.target
    location = Path(probe["location"])
    run = GateRun(
        rootdir=Path(probe["rootdir"]), workdir=plan.workdir / "artifacts", lock_dir=plan.workdir / "locks",
        eval_texts=probe["sentences"], timed_texts=probe["timed_texts"], labelled=None, device=target.device,
        memory=False,
    )  # fmt: skip
    policy = GatePolicy(max_slowdown=plan.max_slowdown, budget_seconds=budget, replicates=plan.replicates)
    arms = [Arm(label, target.model, location, probe["task"], target.technique, str(python))
            for label, python in (("current", good), ("candidate", candidate))]  # fmt: skip
    result = run_gate(arms[0], arms[1], run, policy)
    speed = result.check("speed")
    if speed is None or speed.estimate is None or speed.low is None or speed.high is None:
        return {"verdict": "inconclusive", "evidence": result.detail or "no speed figure"}
    evidence = f"{speed.estimate:.2f}x [{speed.low:.2f}, {speed.high:.2f}] vs {plan.good}"
    return {"verdict": str(speed.verdict), "evidence": evidence}


# --- the project's view of a case -------------------------------------------------------------------


def probe_case(
    target: CaseTarget, rootdir: Path, python: str = sys.executable, paths: Sequence[str] = (),
    pythonpath: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """Resolve the case's model and technique as the project's own pytest session does (its conftest
    registers models and techniques): a ``--collect-only`` run with the probe plugin, in a subprocess
    (``pythonpath``: entries it imports first, e.g. perfgate's source for an overlay's interpreter)."""
    with tempfile.TemporaryDirectory(prefix="perfgate-probe-") as scratch:
        out = Path(scratch) / "probe.json"
        env = {**os.environ, "PERFGATE_PROBE": json.dumps({**vars(target), "out": str(out)})}
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([*pythonpath, *filter(None, [os.environ.get("PYTHONPATH")])])
        command = [python, "-m", "pytest", "--collect-only", "-q", "-p", "perfgate.plugin.bisect_probe", *paths]
        done = subprocess.run(command, cwd=rootdir, env=env, capture_output=True, text=True, check=False)
        if not out.is_file():
            tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-4:])
            raise PerfgateError(f"the project's suite in {rootdir} could not resolve {target.case_id}: {tail}")
        answer: dict[str, Any] = json.loads(out.read_text())
    if "error" in answer:
        raise PerfgateError(f"{target.case_id}: {answer['error']}")
    return answer


# --- commits ----------------------------------------------------------------------------------------


@dataclass
class CommitBisection:
    good: str
    bad: str
    target: CaseTarget
    nodeid: str  # the test that measures the case
    repository: Path
    budget_seconds: float = 10.0
    max_slowdown: float = 0.10
    band_runs: int = 3
    python: str = sys.executable
    log: Callable[[str], None] = print


def measure_in(checkout: Path, nodeid: str, case_id: str, budget: float, python: str) -> dict[str, Any]:
    """One fresh pytest run of ``nodeid`` in ``checkout``: the case's speedup against fp32 and its
    interval, or why there is none (the outcome, the last lines)."""
    from perfgate.records.regressions import rerun_tests

    try:
        record = rerun_tests([nodeid], {"budget": budget}, cwd=checkout, python=python, quiet=True)
    except PerfgateError as error:
        return {"error": str(error)}
    case = next((c for c in record.cases if c.spec.case_id == case_id), None)
    if case is None:
        return {"error": f"{nodeid} did not measure {case_id}"}
    estimate = (case.metrics.get("speed") or {}).get("estimate")
    if not estimate:
        return {"error": f"{case_id}: {case.outcome} {case.detail}".strip()}
    return {"speedup": estimate["speedup"], "ci_low": estimate["ci_low"], "ci_high": estimate["ci_high"]}


def band_line(band: Sequence[float], max_slowdown: float) -> tuple[float, str | None]:
    """The slowdown line a step is judged against: the median of GOOD's runs, at most ``max_slowdown``
    slower. The median, not the lowest: one run of a loaded machine (0.11x where the others read 1.00x, a
    neighbour's burst in one process) would pull the line below every real regression. A run at less
    than half or more than twice the median is named as an outlier."""
    median = statistics.median(band)
    far = [value for value in band if not median / 2 <= value <= median * 2]
    note = None
    if far:
        note = f"left out of the line as far from the median {median:.2f}x: {', '.join(f'{v:.2f}x' for v in far)}"
    return median / (1 + max_slowdown), note


def judge_against_band(figure: dict[str, Any], line: float) -> tuple[int, str]:
    """git bisect run's exit code for a step and the evidence: bad when the whole interval is below the
    band's slowdown line, good when it is wholly above, skip when it straddles or nothing was measured."""
    if "error" in figure:
        return SKIP, f"not measured: {figure['error']}"
    text = f"{figure['speedup']:.2f}x [{figure['ci_low']:.2f}, {figure['ci_high']:.2f}] against fp32, line {line:.2f}"
    if figure["ci_high"] < line:
        return BAD, text
    if figure["ci_low"] > line:
        return GOOD, text
    return SKIP, text + ": undecided"


def bisect_commits(plan: CommitBisection) -> BisectResult:
    repository = plan.repository
    for option, revision in (("--git GOOD", plan.good), ("--git BAD", plan.bad)):
        if subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"], cwd=repository,
                          capture_output=True, check=False).returncode != 0:  # fmt: skip
            raise ConfigError(f"{option} {revision!r} is not a commit of {repository}")
    listed = subprocess.run(["git", "rev-list", "--count", f"{plan.good}..{plan.bad}"], cwd=repository,
                            capture_output=True, text=True, check=True)  # fmt: skip
    candidates = int(listed.stdout.strip())
    scratch = Path(tempfile.mkdtemp(prefix="perfgate-bisect-"))
    worktree = scratch / "worktree"
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(worktree), plan.good], cwd=repository,
                   check=True, capture_output=True)  # fmt: skip
    steps: list[Step] = []
    notes: list[str] = []
    try:
        band = []
        for run in range(plan.band_runs):
            figure = measure_in(worktree, plan.nodeid, plan.target.case_id, plan.budget_seconds, plan.python)
            if "error" in figure:
                raise PerfgateError(
                    f"--git GOOD {plan.good}: {plan.target.case_id} was not measured ({figure['error']})"
                )
            band.append(figure["speedup"])
            steps.append(Step(f"{plan.good} (band {run + 1})", "good", f"{figure['speedup']:.2f}x "
                              f"[{figure['ci_low']:.2f}, {figure['ci_high']:.2f}] against fp32"))  # fmt: skip
        line, outliers = band_line(band, plan.max_slowdown)
        plan.log(f"perfgate bisect: {plan.good} measured {plan.band_runs}x: {', '.join(f'{b:.2f}x' for b in band)}; "
                 f"a step is bad below {line:.2f}x")  # fmt: skip
        notes.append(
            f"band from {plan.good}: {min(band):.2f}x to {max(band):.2f}x against fp32; bad when a step's "
            f"interval lies wholly below {line:.2f}x (at most {plan.max_slowdown:.0%} slower than the band's "
            "median), skipped when it straddles; a ratio against fp32 misses a change that slows fp32 as much as "
            "the technique" + (f"; {outliers}" if outliers else "")
        )
        log_file = scratch / "steps.jsonl"
        step = [plan.python, "-m", "perfgate.answers.bisect", "step", "--nodeid", plan.nodeid,
                "--case", plan.target.case_id, "--line", repr(line), "--budget", repr(plan.budget_seconds),
                "--log", str(log_file), "--python", plan.python]  # fmt: skip
        git = ["git", "-c", "core.hooksPath=/dev/null"]
        subprocess.run([*git, "bisect", "start", plan.bad, plan.good], cwd=worktree, check=True, capture_output=True)
        done = subprocess.run([*git, "bisect", "run", *step], cwd=worktree, capture_output=True, text=True, check=False)
        first_bad = next(
            (line.split()[0] for line in done.stdout.splitlines() if line.endswith(FIRST_BAD_COMMIT)), None
        )
        if first_bad is None:
            tail = " ".join(done.stdout.strip().splitlines()[-3:])
            notes.append(f"git bisect named no single first bad commit: {tail}")
        for line_text in log_file.read_text().splitlines() if log_file.is_file() else []:
            entry = json.loads(line_text)
            verdict = {GOOD: "good", BAD: "bad"}.get(entry["exit"], "skipped")
            steps.append(Step(entry["commit"][:12], verdict, entry["evidence"]))
        subprocess.run([*git, "bisect", "reset"], cwd=worktree, capture_output=True, check=False)
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)], cwd=repository, capture_output=True, check=False
        )
        shutil.rmtree(scratch, ignore_errors=True)
    return BisectResult("git", plan.good, plan.bad, first_bad, steps, candidates, notes)


def _step_main(argv: list[str]) -> int:
    """``git bisect run``'s predicate: measure the case at the checked-out commit, judge against the line."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m perfgate.answers.bisect step")
    parser.add_argument("--nodeid", required=True)
    parser.add_argument("--case", required=True)
    parser.add_argument("--line", type=float, required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    for budget in (args.budget, 2 * args.budget):  # an undecided step is measured again, as a release's is
        figure = measure_in(Path.cwd(), args.nodeid, args.case, budget, args.python)
        code, evidence = judge_against_band(figure, args.line)
        if code != SKIP or "error" in figure:
            break
        evidence = f"{evidence} at {budget:g} s" if budget == args.budget else f"{evidence} twice (at {budget:g} s)"
    with args.log.open("a", encoding="utf-8") as log:
        log.write(json.dumps({"commit": commit, "exit": code, "evidence": evidence}) + "\n")
    print(f"{commit[:12]}: {evidence} -> {({GOOD: 'good', BAD: 'bad'}).get(code, 'skip')}")
    return code


if __name__ == "__main__":
    if sys.argv[1:2] != ["step"]:
        sys.exit("usage: python -m perfgate.answers.bisect step ... "
                 "(git bisect run's predicate; see perfgate bisect --help)")  # fmt: skip
    sys.exit(_step_main(sys.argv[2:]))
