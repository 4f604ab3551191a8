"""A few nights of .github/workflows/nightly-cpu.yml each, replayed as GitHub Actions runs them
(tests/nightly_world.py), for what broke the loop on real runners: the night after an acceptance, shards
that ran on two hardware classes, a manual cancel. tests/test_nightly_season.py replays a season."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

from tests.nightly_world import AVX2, AVX512, Plan, World

ALL_AVX2 = dict.fromkeys((1, 2, 3), AVX2)
ALL_AVX512 = dict.fromkeys((1, 2, 3), AVX512)
CASE = "minilm/ort-int8/b1/cpu"


def test_the_nights_after_an_acceptance_keep_it_once_and_stay_green(tmp_path, monkeypatch):
    """Each night copies the acceptance on, so from the second night after it two fetched nights hold one
    file name: `cp -t` refused the second copy and the night went red with nothing compared."""
    with ExitStack() as stack:
        world = World(tmp_path, monkeypatch, stack)
        assert world.night(Plan(ALL_AVX2), report=False).conclusion == "success"
        regressed = world.night(Plan(ALL_AVX2, factors={(CASE, AVX2): 0.75}), report=False)
        assert regressed.conclusion == "failure"
        (issue,) = world.github.issues()
        assert issue["title"] == "perfgate: confirmed regression in ort-int8 on cpu-avx2 (nightly-cpu)"
        accepted = world.night(Plan(ALL_AVX2, factors={(CASE, AVX2): 0.75}, accept=(CASE,)), report=False)
        assert accepted.conclusion == "success", accepted.run.summary("join")
        assert world.github.issues()[0]["state"] == "closed"
        for _ in range(3):
            night = world.night(Plan(ALL_AVX2, factors={(CASE, AVX2): 0.75}), report=False)
            assert night.conclusion == "success", [leg.log for leg in night.run.jobs["join"]]
            artifact = world.github.run(night.run_id)["artifacts"]["perfgate-nightly-cpu"]["path"]
            assert len(list(Path(artifact).glob("accept-*.json"))) == 1
        assert len(world.github.issues()) == 1


def test_shards_on_two_classes_are_each_compared_with_their_own_class(tmp_path, monkeypatch):
    """bf16 runs 0.45x on AVX2 and 1.9x on AVX-512: compared across classes it would alert; joined as one
    run the shards were refused and the night was red."""
    with ExitStack() as stack:
        world = World(tmp_path, monkeypatch, stack)
        world.night(Plan(ALL_AVX2), report=False)
        world.night(Plan(ALL_AVX512), report=False)
        mixed = world.night(Plan({1: AVX2, 2: AVX512, 3: AVX2}))
        assert mixed.conclusion == "success", mixed.run.summary("join")
        summary = mixed.run.summary("join")
        assert "## cpu-avx2\n\n4 unchanged" in summary
        assert "## cpu-avx512-bf16\n\n2 unchanged" in summary
        artifact = world.github.run(mixed.run_id)["artifacts"]["perfgate-nightly-cpu"]["path"]
        stored = {p.parent.name for p in Path(artifact).glob("*/results.json")}
        assert stored == {AVX2, AVX512}
        assert all((Path(artifact) / name / "report.html").is_file() for name in stored)
        assert world.github.issues() == []


def test_a_cancelled_night_compares_stores_and_alerts_nothing(tmp_path, monkeypatch):
    with ExitStack() as stack:
        world = World(tmp_path, monkeypatch, stack)
        world.night(Plan(ALL_AVX2), report=False)
        cancelled = world.night(Plan(ALL_AVX2, factors={(CASE, AVX2): 0.75}, cancel=True), report=False)
        assert cancelled.conclusion == "cancelled"
        assert [cancelled.run.result(job) for job in ("join", "alert")] == ["skipped", "skipped"]
        assert world.github.issues() == []
        after = world.night(Plan(ALL_AVX2), report=False)
        assert after.conclusion == "success"
        assert ["run", "download", str(cancelled.run_id)] not in [call[:3] for call in world.github.calls()]
        compared = json.loads(
            (Path(world.github.run(after.run_id)["artifacts"]["perfgate-nightly-cpu"]["path"])
             / "compare.json").read_text()
        )  # fmt: skip
        assert {c["status"] for c in compared["cases"]} == {"unchanged"}
