"""The upgrade gates' judgments on planted figures: accuracy non-inferiority over paired examples,
speed over replicated worker pairs, memory, the verdict and exit status, bad input, the report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from perfgate.answers.arms import Arm
from perfgate.answers.upgrade import (
    Check,
    GatePolicy,
    GateResult,
    exit_status,
    judge_accuracy,
    judge_memory,
    judge_speed,
    plan_gate,
)
from perfgate.errors import ConfigError, UnknownTechniqueError
from perfgate.instruments.comparison import Comparison
from perfgate.instruments.fidelity import paired_difference
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.reports.gates import gate_markdown

POLICY = GatePolicy()
RNG = np.random.default_rng(7)
CURRENT = RNG.random(272) < 0.79  # about MiniLM's score on the hard set


def with_losses(outcomes: np.ndarray, losses: int) -> np.ndarray:
    """The same outcomes, with ``losses`` examples the current model got right now wrong."""
    worse = outcomes.copy()
    worse[np.flatnonzero(outcomes)[:losses]] = False
    return worse


def test_identical_outcomes_differ_by_nothing_and_pass():
    assert paired_difference(CURRENT, CURRENT, 0.9, 1000, 0) == (0.0, 0.0, 0.0)
    assert judge_accuracy(CURRENT.tolist(), CURRENT.tolist(), POLICY, "set").verdict is Verdict.PASS


def test_a_clear_loss_fails_a_small_one_is_inconclusive_and_a_gain_passes():
    clear = judge_accuracy(CURRENT.tolist(), with_losses(CURRENT, 30).tolist(), POLICY, "set")
    assert clear.verdict is Verdict.FAIL
    assert clear.estimate == pytest.approx(-30 / 272)
    assert clear.high < -POLICY.accuracy_margin
    small = judge_accuracy(CURRENT.tolist(), with_losses(CURRENT, 5).tolist(), POLICY, "set")
    assert small.verdict is Verdict.INCONCLUSIVE, "-1.8 points: the interval straddles the 2-point margin"
    assert small.low < -POLICY.accuracy_margin < small.high
    gain = ~with_losses(~CURRENT, 10)  # ten examples the current model got wrong, now right
    assert judge_accuracy(CURRENT.tolist(), gain.tolist(), POLICY, "set").verdict is Verdict.PASS


def comparison(ratio: float, offset: float = 1.0, pairs: int = 20, seed: int = 0) -> Comparison:
    """Planted ABBA blocks: the candidate's blocks take ``ratio`` times the baseline's, times a per-process
    ``offset`` (two identical processes differ by themselves), with 2% noise."""
    rng = np.random.default_rng(seed)
    baseline = list(0.010 * (1 + 0.02 * rng.standard_normal(pairs)))
    candidate = [b * ratio * offset * (1 + 0.02 * rng.standard_normal()) for b in baseline]
    result = Comparison(baseline_seconds=baseline, candidate_seconds=candidate)
    from perfgate.instruments.comparison import estimate_speedup

    result.estimate = estimate_speedup(baseline, candidate)
    return result


def test_speed_fails_a_candidate_slower_than_the_margin_and_passes_an_equal_one():
    slower = judge_speed([comparison(1.3, seed=k) for k in range(3)], POLICY)
    assert slower.verdict is Verdict.FAIL
    assert slower.estimate == pytest.approx(1 / 1.3, rel=0.03)
    equal = judge_speed([comparison(1.0, seed=k) for k in range(3)], POLICY)
    assert equal.verdict is Verdict.PASS
    assert "in 3 pairs of workers" in equal.detail


def test_speed_is_inconclusive_when_worker_pairs_disagree_more_than_the_margin_allows():
    """Within each worker pair the interval is narrow; across pairs the candidate is 0.85x to 1.05x."""
    disagreeing = [comparison(1.0, offset, seed=k) for k, offset in enumerate((1 / 0.85, 1.0, 1 / 1.05))]
    check = judge_speed(disagreeing, POLICY)
    assert check.verdict is Verdict.INCONCLUSIVE
    assert check.low < POLICY.speed_bound < check.high
    assert judge_speed([], POLICY).verdict is Verdict.INCONCLUSIVE


def test_memory_fails_above_the_allowed_growth():
    assert judge_memory(100 << 20, 105 << 20, POLICY).verdict is Verdict.PASS
    failed = judge_memory(100 << 20, 120 << 20, POLICY)
    assert failed.verdict is Verdict.FAIL
    assert failed.estimate == pytest.approx(1.2)
    assert judge_memory(None, 10, POLICY).verdict is Verdict.INCONCLUSIVE


def result(*verdicts: Verdict, outcome: Outcome = Outcome.MEASURED) -> GateResult:
    arm = Arm("current", "m", Path("m"), "feature-extraction")
    gate = GateResult("fp32-eager", arm, Arm("candidate", "n", Path("n"), "feature-extraction"), outcome=outcome)
    gate.checks = [
        Check(name, verdict, 1.0) for name, verdict in zip(("speed", "accuracy", "memory"), verdicts, strict=False)
    ]
    return gate


def test_one_failed_check_fails_the_gate_and_sets_the_exit_status():
    assert result(Verdict.PASS, Verdict.PASS, Verdict.PASS).verdict is Verdict.PASS
    assert result(Verdict.PASS, Verdict.INCONCLUSIVE).verdict is Verdict.INCONCLUSIVE
    assert result(Verdict.FAIL, Verdict.INCONCLUSIVE).verdict is Verdict.FAIL
    assert result(outcome=Outcome.ERROR).verdict is Verdict.FAIL
    assert exit_status([result(Verdict.PASS)]) == 0
    assert exit_status([result(Verdict.PASS), result(Verdict.INCONCLUSIVE)]) == 3
    assert exit_status([result(Verdict.INCONCLUSIVE), result(Verdict.FAIL)]) == 1


def test_the_report_names_each_check_its_interval_and_the_libraries_that_changed():
    gate = result(Verdict.PASS)
    gate.checks = [
        Check("speed", Verdict.FAIL, 0.69, 0.64, 0.71, rule="speedup ≥ 0.909", detail="30 ABBA pairs"),
        Check("accuracy", Verdict.PASS, 0.0, -0.004, 0.004, rule="difference ≥ -0.020"),
    ]
    gate.figures["arms"] = {
        "current": {"libraries": {"transformers": "4.57.6", "torch": "2.13.0"}, "python": "3.11.7"},
        "candidate": {"libraries": {"transformers": "5.23.0", "torch": "2.13.0"}, "python": "3.11.7"},
    }
    text = gate_markdown([gate.to_dict()])
    assert "### fp32-eager: **fail**" in text
    assert "| speed | **fail** | 0.69x [0.64, 0.71] | speedup ≥ 0.909 | 30 ABBA pairs |" in text
    assert "| accuracy | **pass** | +0.000 [-0.004, +0.004]" in text
    assert "- libraries: transformers 4.57.6 → 5.23.0" in text


def plan(tmp_path: Path, **changes: object) -> object:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("One sentence.\n")
    options = {
        "current": model, "candidate": model, "task": "feature-extraction", "techniques": ["fp32-eager"],
        "current_python": sys.executable, "candidate_python": sys.executable, "eval_file": None,
        "sentences": sentences, "batch_size": 1, "threads": None, "device": "cpu", "memory": True,
        "cache_dir": tmp_path, "workdir": tmp_path, "rootdir": tmp_path, **changes,
    }  # fmt: skip
    return plan_gate(**options)  # type: ignore[arg-type]


def test_bad_input_is_one_clear_error_naming_the_value_and_the_fix(tmp_path):
    pairs, run = plan(tmp_path)  # type: ignore[misc]
    assert [(a.label, b.label) for a, b in pairs] == [("current", "candidate")]
    assert run.timed_texts == ["One sentence."]
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError, match=r"--candidate '.*no-such-model' is not a model directory .*save_pretrained"):
        plan(tmp_path, candidate=missing)
    with pytest.raises(ConfigError, match=r"--candidate-python '/no/such/python' is not an executable interpreter"):
        plan(tmp_path, candidate_python="/no/such/python")
    with pytest.raises(UnknownTechniqueError, match="no-such-technique"):
        plan(tmp_path, techniques=["no-such-technique"])
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "q"\n')
    with pytest.raises(ConfigError, match=r"broken\.jsonl' cannot be read as JSON lines"):
        plan(tmp_path, eval_file=broken)
    with pytest.raises(ConfigError, match="pass --sentences FILE or --eval-file FILE"):
        plan(tmp_path, sentences=None)


def test_perfgate_gate_fails_a_less_accurate_candidate_and_passes_the_model_against_itself(tmp_path, micro_model_dir):
    """End to end through the console script on the micro classifier. The labels are the current
    model's own predictions (it scores 100%); the candidate's classifier rows are rotated, so it
    predicts other classes."""
    import json
    import shutil

    import torch
    import transformers
    from safetensors.torch import load_file, save_file

    from perfgate.cli import main

    texts = [f"Sentence number {i} about {topic}." for i in range(30) for topic in ("rain", "trains")]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(micro_model_dir).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(micro_model_dir)
    with torch.no_grad():
        labels = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.argmax(-1).tolist()
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in zip(texts, labels, strict=True)))
    candidate = tmp_path / "rotated"
    shutil.copytree(micro_model_dir, candidate)
    weights = load_file(candidate / "model.safetensors")
    for name in ("classifier.weight", "classifier.bias"):
        weights[name] = torch.roll(weights[name], 1, dims=0).contiguous()
    save_file(weights, candidate / "model.safetensors", metadata={"format": "pt"})

    common = ["gate", "--current", str(micro_model_dir), "--task", "text-classification", "--eval-file", str(labelled),
              "--budget", "1", "--no-memory", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    report = tmp_path / "gate.md"
    assert (
        main([*common, "--candidate", str(candidate), "--markdown", str(report), "--json", str(tmp_path / "g.json")])
        == 1
    )
    text = report.read_text()
    assert "### fp32-eager: **fail**" in text
    assert "| accuracy | **fail** |" in text
    assert "- changed from its default: OMP_WAIT_POLICY (both arms' workers) = PASSIVE" in text
    gates = json.loads((tmp_path / "g.json").read_text())
    accuracy = next(check for check in gates[0]["checks"] if check["name"] == "accuracy")
    assert accuracy["estimate"] < -0.5
    assert [setting["value"] for setting in gates[0]["figures"]["settings"]] == ["PASSIVE"]
    assert "current 1.000" in accuracy["detail"]

    assert main([*common, "--json", str(tmp_path / "same.json")]) in (0, 3)
    same = json.loads((tmp_path / "same.json").read_text())[0]
    assert next(check for check in same["checks"] if check["name"] == "accuracy")["verdict"] == "pass"
    assert same["figures"]["outputs"]["max_abs_error"] == 0.0


def test_perfgate_gate_exits_2_naming_a_missing_candidate(tmp_path, micro_model_dir, capsys):
    from perfgate.cli import main

    status = main(["gate", "--current", str(micro_model_dir), "--candidate", str(tmp_path / "nowhere"),
                   "--sentences", str(tmp_path / "s.txt")])  # fmt: skip
    assert status == 2
    assert "is not a model directory (no config.json there)" in capsys.readouterr().err


def test_perfgate_gate_times_a_library_upgrade_between_two_live_environments(tmp_path, micro_model_dir):
    """A second environment that differs in onnxruntime alone: one worker per interpreter, three pairs."""
    import json

    from fixtures.environments import overlay_environment
    from perfgate.cli import main

    python = overlay_environment(tmp_path / "env", ("onnxruntime==1.30.0",))
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("The train was late.\nRain.\n")
    status = main(["gate", "--current", str(micro_model_dir), "--candidate-python", str(python), "--task",
                   "text-classification", "--technique", "onnxruntime-o1", "--sentences", str(sentences),
                   "--budget", "1.5", "--no-memory", "--cache-dir", str(tmp_path / "cache"),
                   "--json", str(tmp_path / "gate.json")])  # fmt: skip
    gate = json.loads((tmp_path / "gate.json").read_text())[0]
    assert gate["outcome"] == "measured", gate["detail"]
    assert status == {"pass": 0, "fail": 1, "inconclusive": 3}[gate["verdict"]]
    versions = {arm: figures["libraries"]["onnxruntime"] for arm, figures in gate["figures"]["arms"].items()}
    assert versions["candidate"] == "1.30.0" != versions["current"]
    assert len(gate["figures"]["speed"]) == 3
    assert gate["figures"]["outputs"]["cosine_min"] > 0.999
    accuracy = next(check for check in gate["checks"] if check["name"] == "accuracy")
    assert accuracy["verdict"] == "inconclusive"
    assert "no labelled set" in accuracy["detail"]
