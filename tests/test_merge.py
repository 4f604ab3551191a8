"""perfgate merge: one table across runners, every runner's cases in its own column."""

from __future__ import annotations

from pathlib import Path

from perfgate.cli import main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.results import RunRecord
from perfgate.reports.merge import merged_markdown


def runner(cpu: str, speedup: float | None) -> RunRecord:
    case = CaseResult(spec=CaseSpec("minilm", "bf16-cast"), hardware_class=cpu, verdict=Verdict.PASS,
                      outcome=Outcome.MEASURED if speedup else Outcome.CRASHED)  # fmt: skip
    if speedup:
        case.metrics["speed"] = {"estimate": {"speedup": speedup, "ci_low": speedup - 0.1, "ci_high": speedup + 0.1}}
    return RunRecord(fingerprint={"hardware_class": {"cpu": cpu, "cuda": "gpu-none"}}, config={}, cases=[case])


def test_each_runner_is_a_column_and_a_section(tmp_path):
    runs = [(Path("amx/results.json"), runner("cpu-amx", 1.6)), (Path("avx2/results.json"), runner("cpu-avx2", None))]
    text = merged_markdown(runs)
    columns = "cpu-amx / gpu-none (amx/results.json) | cpu-avx2 / gpu-none (avx2/results.json)"
    assert f"| model | technique | batch | device | {columns} |" in text
    assert "| minilm | bf16-cast | 1 | cpu | 1.60x [1.50, 1.70] PASS | crashed |" in text
    assert "## cpu-amx / gpu-none (amx/results.json)" in text


def test_two_runs_that_read_alike_keep_their_own_columns(tmp_path):
    text = merged_markdown(
        [(Path("a/results.json"), runner("cpu-amx", 1.6)), (Path("a/results.json"), runner("cpu-amx", 1.2))]
    )
    assert "1.60x" in text
    assert "1.20x" in text


def test_the_merge_command(tmp_path):
    paths = []
    for name, record in (("one", runner("cpu-amx", 1.6)), ("two", runner("cpu-avx2", 0.7))):
        path = tmp_path / name / "results.json"
        record.save(path)
        paths.append(str(path))
    output = tmp_path / "merged.md"
    assert main(["merge", *paths, "--output", str(output)]) == 0
    assert "0.70x" in output.read_text()
    assert main(["merge", str(tmp_path / "absent.json"), "--output", str(output)]) == 2


def shard(cpu: str, technique: str, started: str, **config: str) -> RunRecord:
    record = runner(cpu, 1.5)
    record.cases[0].spec = CaseSpec("minilm", technique)
    record.started, record.config = started, dict(config)
    return record


def saved(tmp_path: Path, name: str, record: RunRecord) -> str:
    path = tmp_path / name / "results.json"
    record.save(path)
    return str(path)


def test_shards_of_one_class_join_into_one_results_file(tmp_path):
    one = saved(tmp_path, "shard-1", shard("cpu-avx2", "bf16-cast", "2026-12-03T02:10:00+00:00"))
    two = saved(tmp_path, "shard-2", shard("cpu-avx2", "fp16-cast", "2026-12-03T02:00:00+00:00"))
    joined = tmp_path / "nightly" / "results.json"
    assert main(["merge", one, two, "--results", str(joined)]) == 0
    record = RunRecord.load(joined)
    assert [c.spec.case_id for c in record.cases] == ["minilm/bf16-cast/b1/cpu", "minilm/fp16-cast/b1/cpu"]
    assert record.started == "2026-12-03T02:00:00+00:00"
    assert record.config["shards"] == "2"


def test_shards_of_different_classes_settings_or_overlapping_cases_are_refused(tmp_path, capsys):
    one = saved(tmp_path, "shard-1", shard("cpu-avx2", "bf16-cast", "2026-12-03T02:00:00+00:00"))
    other = saved(tmp_path, "shard-2", shard("cpu-amx", "fp16-cast", "2026-12-03T02:00:00+00:00"))
    joined = tmp_path / "joined.json"
    assert main(["merge", one, other, "--results", str(joined)]) == 2
    assert "does not belong with" in capsys.readouterr().err
    assert not joined.exists()
    threads = saved(tmp_path, "shard-3", shard("cpu-avx2", "fp16-cast", "2026-12-03T02:00:00+00:00", threads="4"))
    assert main(["merge", one, threads, "--results", str(joined)]) == 2
    assert "threads=4" in capsys.readouterr().err
    again = saved(tmp_path, "shard-4", shard("cpu-avx2", "bf16-cast", "2026-12-03T02:00:00+00:00"))
    assert main(["merge", one, again, "--results", str(joined)]) == 2
    assert "'minilm/bf16-cast/b1/cpu' is in shard" in capsys.readouterr().err


def test_merge_without_an_output_says_which_to_give(tmp_path, capsys):
    one = saved(tmp_path, "shard-1", shard("cpu-avx2", "bf16-cast", "2026-12-03T02:00:00+00:00"))
    assert main(["merge", one]) == 2
    assert "--results FILE (join shards) or --output FILE" in capsys.readouterr().err
