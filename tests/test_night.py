"""perfgate join-night: shards of one night on machines of two classes, each compared with its own class's
history before upload, joined into one night with a section per class, and every reason it is red."""

from __future__ import annotations

import json
from pathlib import Path

from perfgate.cli import main
from perfgate.instruments.outcome import Outcome
from perfgate.records.history import load_history
from perfgate.records.results import RunRecord
from perfgate.reports.night import join_night, read_shard
from tests.test_history import case

SETTINGS = {"budget": "20.0", "min_pairs": "10", "threads": "None", "precision": "0.03"}


def record(cpu: str, *techniques: str, started: str = "2026-11-20T03:00:00+00:00") -> RunRecord:
    fingerprint = {"hardware_class": {"cpu": cpu, "cuda": "gpu-none"}, "libraries": {"torch": "2.13.0+cpu"}}
    return RunRecord(fingerprint=fingerprint, config=dict(SETTINGS), cases=[case(t, 2.0) for t in techniques],
                     started=started)  # fmt: skip


def shard(root: Path, number: int, run: RunRecord, statuses: dict[str, tuple[str, bool | None]] | None) -> Path:
    """A shard's artifact: its results, annotated and with compare.json when it was compared."""
    folder = root / f"perfgate-nightly-cpu-shard-{number}"
    if statuses is not None:
        run.against_history = {c: {"status": s, "confirmed": k} for c, (s, k) in statuses.items()}
        cases = [{"case_id": c, "status": s, "confirmed": k, "detail": "d", "reproduce": "", "figures": []}
                 for c, (s, k) in statuses.items()]  # fmt: skip
        folder.mkdir(parents=True)
        (folder / "compare.json").write_text(json.dumps({"cases": cases, "acceptances": []}))
    run.save(folder / "results.json")
    return folder


def test_shards_of_two_classes_join_each_class_on_its_own_with_its_verdicts(tmp_path):
    shards = tmp_path / "shards"
    one = shard(shards, 1, record("cpu-avx2", "ort-int8"), {"minilm/ort-int8/b1/cpu": ("unchanged", None)})
    two = shard(shards, 2, record("cpu-avx512-bf16", "bf16-cast"),
                {"minilm/bf16-cast/b1/cpu": ("regression", True)})  # fmt: skip
    three = shard(shards, 3, record("cpu-avx2", "torch-int8"), {"minilm/torch-int8/b1/cpu": ("unchanged", None)})
    night = join_night([read_shard(f) for f in (one, two, three)], 3, None)
    assert sorted(night.classes) == ["cpu-avx2", "cpu-avx512-bf16"]
    assert sorted(c.spec.technique for c in night.classes["cpu-avx2"].cases) == ["ort-int8", "torch-int8"]
    assert night.classes["cpu-avx2"].against_history == {
        "minilm/ort-int8/b1/cpu": {"status": "unchanged", "confirmed": None},
        "minilm/torch-int8/b1/cpu": {"status": "unchanged", "confirmed": None},
    }
    assert {c["case_id"]: c["runner_class"] for c in night.cases} == {
        "minilm/ort-int8/b1/cpu": "cpu-avx2", "minilm/bf16-cast/b1/cpu": "cpu-avx512-bf16",
        "minilm/torch-int8/b1/cpu": "cpu-avx2",
    }  # fmt: skip
    markdown = night.markdown()
    assert "## cpu-avx2\n\n2 unchanged" in markdown
    assert "## cpu-avx512-bf16\n\n1 regression" in markdown
    assert night.red == [
        "cpu-avx512-bf16: `minilm/bf16-cast/b1/cpu` regression, confirmed on the machine that measured it (d)"
    ]


def test_a_shard_that_uploaded_nothing_or_was_not_compared_is_a_named_reason(tmp_path):
    shards = tmp_path / "shards"
    one = shard(shards, 1, record("cpu-avx2", "ort-int8"), {"minilm/ort-int8/b1/cpu": ("unchanged", None)})
    uncompared = shard(shards, 3, record("cpu-avx2", "torch-int8"), None)
    night = join_night([read_shard(one), read_shard(uncompared)], 3, None)
    assert night.red == [
        "shard 2 of 3 uploaded nothing: its job died or was stopped before the upload",
        "shard perfgate-nightly-cpu-shard-3 (cpu-avx2): it was not compared with its class's history (no "
        "compare.json: see that job's log); its results stay out of the history",
    ]
    assert [c.spec.technique for c in night.classes["cpu-avx2"].cases] == ["ort-int8"]  # out of the history


def test_a_case_of_the_latest_night_that_no_shard_measured_is_missing(tmp_path):
    history = tmp_path / "history" / "1001"
    record("cpu-avx2", "ort-int8", "torch-int8", started="2026-11-19T03:00:00+00:00").save(
        history / "cpu-avx2" / "results.json")  # fmt: skip
    record("cpu-avx512-bf16", "bf16-cast", started="2026-11-19T03:00:00+00:00").save(
        history / "cpu-avx512-bf16" / "results.json")  # fmt: skip
    shards = tmp_path / "shards"
    one = shard(shards, 1, record("cpu-avx512-bf16", "ort-int8"), {"minilm/ort-int8/b1/cpu": ("new", None)})
    night = join_night([read_shard(one)], 1, load_history(tmp_path / "history"))
    missing = {c["case_id"]: c["runner_class"] for c in night.cases if c["status"] == "missing"}
    assert missing == {"minilm/torch-int8/b1/cpu": "cpu-avx2", "minilm/bf16-cast/b1/cpu": "cpu-avx512-bf16"}


def test_crashed_cases_and_a_failed_fetch_make_the_night_red_by_name(tmp_path):
    crashed = record("cpu-avx2", "ort-int8")
    crashed.cases[0].outcome = Outcome.CRASHED
    one = shard(tmp_path, 1, crashed, {"minilm/ort-int8/b1/cpu": ("failed", False)})
    night = join_night([read_shard(one)], 1, None, "FAILED: gh run list failed: HTTP 502\nfetched 0 run(s)")
    assert night.red == [
        "the history could not be fetched: gh run list failed: HTTP 502",
        "cpu-avx2: `minilm/ort-int8/b1/cpu`: crashed, verdict inconclusive (shard perfgate-nightly-cpu-shard-1)",
    ]
    assert night.notes == ["history: fetched 0 run(s)"]


def test_the_command_writes_each_class_and_the_night_and_names_a_bad_shard(tmp_path, capsys):
    one = shard(tmp_path / "shards", 1, record("cpu-avx2", "ort-int8"), {"minilm/ort-int8/b1/cpu": ("new", None)})
    broken = tmp_path / "shards" / "perfgate-nightly-cpu-shard-2"
    broken.mkdir()
    (broken / "results.json").write_text("{")
    summary = tmp_path / "summary.md"
    code = main(["join-night", str(one), str(broken), "--expect-shards", "2", "--output", str(tmp_path / "out"),
                 "--history", str(tmp_path / "absent"), "--markdown", str(summary)])  # fmt: skip
    assert code == 0
    assert RunRecord.load(tmp_path / "out" / "cpu-avx2" / "results.json").cases[0].spec.technique == "ort-int8"
    written = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert written["classes"] == ["cpu-avx2"]
    assert any("perfgate-nightly-cpu-shard-2: its results.json does not load" in line for line in written["red"])
    assert "no history at" in summary.read_text()
    assert (tmp_path / "out" / "night.md").read_text() == summary.read_text()
