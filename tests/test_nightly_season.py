"""A season of the CPU nightly: 60 replayed nights of .github/workflows/nightly-cpu.yml (tests/nightly_world.py)
on runners that draw their CPU class 70/30 from cpu-avx2 and cpu-avx512-bf16, with a seeded schedule of
what goes wrong: a regression of a `slow` case and its acceptance, one on one class only and its fix,
another regression and a second acceptance, one-night blips, a manual cancel, a shard whose runner is
lost, an expired artifact, a `gh` outage, a crash, and a dispatch from a feature branch.

After every night the loop's invariants are asserted against the truth the night was planted from:
the night is red exactly when something was wrong, and its summary names each cause; no issue opens
for a case that did not change; every planted regression is alerted on its class the first night that
class measures it, and its issue closes at its acceptance or after its fix; what enters the history
carries its verdicts, so a regressed, unaccepted night never becomes a reference.

The HTML report is drawn on two nights (``REPORT_NIGHTS``: mixed classes with a regression;
the last, with the longest history); on the others its step is left out: it only renders what the
other steps wrote, at ~1 s a class. Every other step runs every night.
"""

from __future__ import annotations

import json
import random
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.nightly_world import AVX2, AVX512, BY_ID, CASES, Night, Plan, World

SLOW_CASE = "tiny-bert/onnxruntime-o2/b1/cpu"
ONE_CLASS_CASE = "minilm/bf16-cast/b1/cpu"
SECOND_CASE = "minilm/ort-int8/b1/cpu"
CRASH_CASE = "minilm/torch-int8/b1/cpu"
NIGHTS = 60
REPORT_NIGHTS = (25, 60)  # a mixed night with a one-class regression; the last, with the longest history


@dataclass
class Season:
    plans: list[Plan]
    fixes: dict[tuple[str, str], int] = field(default_factory=dict)  # (case, class) -> the night it is fixed

    def accepted(self, night: int, case_id: str, name: str) -> float:
        """The change in force for a case on a class, as its latest acceptance up to ``night`` took it: an
        acceptance restarts every class's reference from the accepted night on."""
        factor = 1.0
        for plan in self.plans[:night]:
            if case_id in plan.accept:
                factor = plan.factors.get((case_id, name), 1.0)
        return factor


def family(case_id: str) -> str:
    return case_id.split("/")[1]


def season(seed: int = 7) -> Season:
    rng = random.Random(seed)
    plans = []
    for night in range(1, NIGHTS + 1):
        if night <= 2:  # every case measured once on each class before anything is planted
            classes = dict.fromkeys(range(1, 4), AVX2 if night == 1 else AVX512)
        else:
            classes = {shard: AVX2 if rng.random() < 0.7 else AVX512 for shard in range(1, 4)}
        plans.append(Plan(classes))
    plan = {night: plans[night - 1] for night in range(1, NIGHTS + 1)}
    result = Season(plans)

    def regress(case_id: str, classes: tuple[str, ...], start: int, end: int, factor: float) -> None:
        for night in range(start, end):
            plan[night].factors.update({(case_id, name): factor for name in classes})

    # A `slow` case 30 % slower on every class from night 12; accepted by hand on night 16.
    regress(SLOW_CASE, (AVX2, AVX512), 12, NIGHTS + 1, 0.7)
    plan[16].accept = (SLOW_CASE,)
    # A kernel change on the AVX-512 runners only, nights 24-30, fixed on 31; shard 2 draws AVX-512 on
    # some of those nights and on three after the fix (so its issue can close).
    shard = BY_ID[ONE_CLASS_CASE].shard
    regress(ONE_CLASS_CASE, (AVX512,), 24, 31, 0.75)
    for night in (25, 27, 32, 34, 36):
        plan[night].classes[shard] = AVX512
    result.fixes[(ONE_CLASS_CASE, AVX512)] = 31
    # Another family regresses on night 44, accepted on night 47: the second acceptance of the season.
    regress(SECOND_CASE, (AVX2, AVX512), 44, NIGHTS + 1, 0.75)
    plan[47].accept = (SECOND_CASE,)
    for night, case_id in ((9, "minilm/torch-int8/b1/cpu"), (35, "minilm/train-bf16-autocast/b1/cpu"),
                           (53, "tiny-bert/ort-int8/b1/cpu")):  # fmt: skip
        plan[night].blips.add(case_id)
    plan[20].cancel = True
    plan[28].dead_shard = 3
    plan[33].expire_night = 31
    plan[38].outage = True
    plan[56].crashes.add(CRASH_CASE)
    for night in range(56, NIGHTS + 1):  # the crash's class measures the case again, so its issue can close
        plan[night].classes[BY_ID[CRASH_CASE].shard] = AVX2
    result.fixes[(CRASH_CASE, AVX2)] = 57
    return result


def regressed(result: Season, night: Night, case_id: str, name: str) -> bool:
    """The case measured tonight on ``name`` more than 10 % below what its class was accepted at."""
    if night.measured.get(case_id) != name:
        return False
    return night.plan.factors.get((case_id, name), 1.0) < 0.9 * result.accepted(night.number, case_id, name)


def nightly_artifact(world: World, night: Night) -> Path | None:
    found = world.github.run(night.run_id)["artifacts"].get("perfgate-nightly-cpu")
    return Path(found["path"]) if found else None


def issue_family(title: str) -> str:
    return title.removeprefix("perfgate: confirmed regression in ").split(" on ")[0]


def check(world: World, result: Season, night: Night) -> None:
    plan, label = night.plan, f"night {night.number}"
    if plan.cancel:
        assert night.conclusion == "cancelled", label
        assert world.github.issues() == night.issues_before, f"{label}: a cancelled night touched the issues"
        return
    changed = [(c, n) for c, n in night.measured.items() if regressed(result, night, c, n)]
    crashed = [c for c in plan.crashes if c in night.measured]
    expected_red = bool(changed or crashed or plan.outage or plan.dead_shard)
    summary = night.run.summary("join")
    assert night.conclusion == ("failure" if expected_red else "success"), f"{label}: {night.conclusion}\n{summary}"
    if expected_red:  # never red without a cause the summary names
        assert "This night is red because:" in summary, f"{label}: {summary}"
        for case_id, _ in [] if plan.outage else changed:  # an outage compares nothing: it is the cause
            assert case_id in summary, f"{label}: {case_id} not named\n{summary}"
        if plan.dead_shard:
            assert f"shard {plan.dead_shard} of 3 uploaded nothing" in summary, label
        if plan.outage:
            assert "the history could not be fetched: could not ask gh" in summary, label
            assert "error connecting to api.github.com" in summary, label  # gh's own words
    else:
        assert "Nothing in tonight's results makes the night red." in summary, f"{label}: {summary}"
    if len(set(plan.classes.values())) > 1 and not plan.outage:
        for name in {night.measured[c] for c in night.measured}:
            assert f"## {name}" in summary, f"{label}: no section for {name}"
    if plan.outage:
        return  # gh answers nothing tonight: no issue can move
    before = {issue["number"]: issue for issue in night.issues_before}
    issues = world.github.issues()
    alerting = {(family(c), n) for c, n in changed} | {(family(c), night.measured[c]) for c in crashed}
    for issue in issues:
        if issue["number"] not in before:  # no issue opens for a case that did not change
            key = issue["title"].removeprefix("perfgate: confirmed regression in ").removesuffix(" (nightly-cpu)")
            name, _, runner = key.partition(" on ")
            assert (name, runner) in alerting, f"{label}: opened {issue['title']!r} with nothing planted"
            assert issue["assignees"] == ["alice"], issue
    for name, runner in alerting:  # alerted the first night its class measured it
        title = f"perfgate: confirmed regression in {name} on {runner} (nightly-cpu)"
        found = [i for i in issues if i["title"] == title and i["state"] == "open"]
        assert found, f"{label}: no open issue {title!r}"
        touched = found[0]["number"] not in before or len(found[0]["comments"]) > len(
            before[found[0]["number"]]["comments"]
        )
        assert touched, f"{label}: {title!r} not told of tonight's regression"
    if plan.accept:
        for issue in issues:
            if issue_family(issue["title"]) in {family(c) for c in plan.accept} and issue["number"] in before:
                assert issue["state"] == "closed", f"{label}: {issue['title']} left open by the acceptance"
                assert f"accepted on night {night.number}" in issue["comments"][-1]["body"]
                assert "by maintainer" in issue["comments"][-1]["body"]
    artifact = nightly_artifact(world, night)
    assert artifact is not None, f"{label}: no nightly artifact"
    for stored in sorted(artifact.glob("*/results.json")):  # what enters the history carries its verdicts
        record = json.loads(stored.read_text())
        verdicts = record["against_history"] or {}
        for case in record["cases"]:
            case_id = f"{case['spec']['model']}/{case['spec']['technique']}/b1/cpu"
            assert case_id in verdicts, f"{label}: {case_id} entered the history uncompared"
            if regressed(result, night, case_id, stored.parent.name):
                assert verdicts[case_id] == {"status": "regression", "confirmed": True}, (label, case_id, verdicts)
    accepted_so_far = sum(1 for earlier in world.nights if earlier.plan.accept and not earlier.plan.outage)
    assert len(list(artifact.glob("accept-*.json"))) == accepted_so_far, f"{label}: acceptances not all kept"


def check_season(world: World, result: Season) -> None:
    issues = world.github.issues()
    titles = {(i["title"], i["state"]) for i in issues}
    compared = [night for night in world.nights if not night.plan.cancel and not night.plan.outage]
    alerted = {(c, n) for night in compared for c, n in night.measured.items()
               if regressed(result, night, c, n) or c in night.plan.crashes}  # fmt: skip
    # Each planted change was seen on at least one class, and each one-class change on its class alone.
    assert {c for c, _ in alerted} == {SLOW_CASE, ONE_CLASS_CASE, SECOND_CASE, CRASH_CASE}, sorted(alerted)
    assert {n for c, n in alerted if c == ONE_CLASS_CASE} == {AVX512}
    expected = {(f"perfgate: confirmed regression in {family(c)} on {n} (nightly-cpu)", "closed") for c, n in alerted}
    assert titles == expected, f"every issue is closed at its acceptance or after its fix: {sorted(titles)}"
    by_title = {i["title"]: i for i in issues}
    fixed = by_title[f"perfgate: confirmed regression in {family(ONE_CLASS_CASE)} on {AVX512} (nightly-cpu)"]
    assert fixed["reason"] == "completed"
    assert fixed["comments"][-1]["body"].startswith("perfgate: clean night 3/3")
    accepted = by_title[f"perfgate: confirmed regression in {family(SECOND_CASE)} on {AVX2} (nightly-cpu)"]
    assert accepted["reason"] == "not planned"
    downloads = [call[2] for call in world.github.calls() if call[:2] == ["run", "download"]]
    cancelled = world.nights[19].run_id
    assert str(cancelled) not in downloads, "a cancelled night's artifact was read as history"
    expired = world.nights[33]  # the night after the expiry
    assert "have no artifact perfgate-nightly-cpu (expired" in expired.run.summary("history")
    slow_night = world.nights[11]
    artifact = nightly_artifact(world, slow_night)
    assert artifact is not None
    (slow,) = [c for c in json.loads((artifact / "compare.json").read_text())["cases"] if c["case_id"] == SLOW_CASE]
    assert slow["confirmed"] is True, slow  # a `slow` case re-measured under the nightly's -m


@pytest.mark.timeout(240)
def test_a_season_of_nights_on_mixed_runners_keeps_every_invariant(tmp_path, monkeypatch):
    result = season()
    with ExitStack() as stack:
        world = World(tmp_path, monkeypatch, stack, seed=7)
        for number, plan in enumerate(result.plans, 1):
            if number == 30:  # a dispatch from a feature branch, its artifact planted with wild figures
                poisoned = tmp_path / "poisoned" / "cpu-avx2"
                poisoned.mkdir(parents=True)
                (poisoned / "results.json").write_text("{}")
                world.github.add_run("nightly-cpu.yml", "success", {"perfgate-nightly-cpu": poisoned.parent},
                                     branch="feature", event="workflow_dispatch")  # fmt: skip
            night = world.night(plan, report=number in REPORT_NIGHTS)
            check(world, result, night)
        check_season(world, result)
        feature = [r["databaseId"] for r in world.github.runs if r["headBranch"] == "feature"]
        assert not any(call[:3] == ["run", "download", str(feature[0])] for call in world.github.calls())
    assert len(CASES) == 6


# One event a night after two nights that give every case a reference on each class: what a shorter
# schedule can combine that the season above does not.
EVENT = st.one_of(
    st.tuples(st.just("regress"), st.integers(0, 4), st.sampled_from(("both", AVX2, AVX512))),
    st.tuples(st.just("fix"), st.integers(0, 4)),
    st.tuples(st.just("accept"), st.integers(0, 4)),
    st.tuples(st.just("dead"), st.integers(1, 3)),
    st.sampled_from([("none",), ("cancel",), ("outage",)]),
)
NIGHT = st.tuples(st.lists(st.sampled_from((AVX2, AVX512)), min_size=3, max_size=3), EVENT)


def drawn(nights: list[tuple[list[str], tuple]]) -> Season:
    plans = [Plan(dict.fromkeys((1, 2, 3), AVX2)), Plan(dict.fromkeys((1, 2, 3), AVX512))]
    factors: dict[tuple[str, str], float] = {}
    episodes: set[str] = set()  # one regression a case: a second one would start from a fresh reference
    for classes, event in nights:
        plan = Plan(dict(enumerate(classes, 1)))
        kind, *arguments = event
        case_id = CASES[arguments[0]].case_id if kind in ("regress", "fix", "accept") else ""
        if kind == "regress" and case_id not in episodes:
            episodes.add(case_id)
            for name in (AVX2, AVX512) if arguments[1] == "both" else (arguments[1],):
                factors[(case_id, name)] = 0.7
        elif kind == "fix":
            factors = {key: value for key, value in factors.items() if key[0] != case_id}
        plan.factors = dict(factors)
        if kind == "accept" and any(key[0] == case_id for key in factors):
            plan.accept = (case_id,)
        plan.cancel, plan.outage = kind == "cancel", kind == "outage"
        plan.dead_shard = arguments[0] if kind == "dead" else None
        plans.append(plan)
    return Season(plans)


# A schedule takes seconds to replay: two drawn ones, the same each run, and no shrinking (minutes).
@settings(max_examples=2, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@example(nights=[([AVX2] * 3, ("regress", 0, "both")), ([AVX2] * 3, ("fix", 1)), ([AVX2] * 3, ("outage",))])
@given(nights=st.lists(NIGHT, min_size=3, max_size=5))
def test_any_short_schedule_keeps_the_invariants(tmp_path_factory, monkeypatch, nights):
    result = drawn(nights)
    tmp_path = tmp_path_factory.mktemp("schedule")
    with ExitStack() as stack:
        world = World(tmp_path, monkeypatch, stack, seed=len(nights))
        for plan in result.plans:
            check(world, result, world.night(plan, report=False))
