"""``perfgate recommend`` on planted result sets whose answer is known."""

from __future__ import annotations

import pytest

from perfgate.answers.recommend import Choice, Limits, recommend
from perfgate.cli import main
from perfgate.engine.record import CaseResult
from perfgate.engine.spec import CaseSpec
from perfgate.instruments.outcome import Outcome, Verdict
from perfgate.records.results import RunRecord


def case(technique: str, interval: tuple[float, float, float], cosine: float, memory: float | None = 1.0,
         task_low: float | None = None, batch_size: int = 8) -> CaseResult:  # fmt: skip
    result = CaseResult(spec=CaseSpec("minilm", technique, batch_size=batch_size), hardware_class="cpu-avx2",
                        outcome=Outcome.MEASURED, verdict=Verdict.PASS)  # fmt: skip
    low, point, high = interval
    result.metrics = {"speed": {"estimate": {"speedup": point, "ci_low": low, "ci_high": high}},
                      "fidelity": {"cosine_min": cosine}}  # fmt: skip
    if memory is not None:
        result.metrics["memory"] = {"ratio": memory}
    if task_low is not None:
        result.metrics["task"] = {"ci_low": task_low}
    return result


def chosen(choice: Choice) -> str | None:
    return None if choice.chosen is None else choice.chosen.technique


def record(*cases: CaseResult) -> RunRecord:
    fingerprint = {"hardware_class": {"cpu": "cpu-avx2"}, "libraries": {}}
    return RunRecord(fingerprint=fingerprint, config={}, cases=list(cases), started="2026-12-03T21:00:00+00:00")


def test_a_faster_technique_that_misses_the_cosine_limit_is_not_chosen():
    run = record(case("fp32-eager", (0.98, 1.0, 1.02), 1.0),
                 case("onnxruntime-o2-int8-dynamic", (3.4, 3.6, 3.8), 0.985),
                 case("bf16-cast", (1.5, 1.6, 1.7), 0.9999, 0.5))  # fmt: skip
    [choice] = recommend(run, Limits(min_cosine=0.99))
    assert chosen(choice) == "bf16-cast"
    assert [c.technique for c in choice.left_out] == ["onnxruntime-o2-int8-dynamic"]
    assert choice.left_out[0].missed == ("cosine 0.9850 < 0.99",)
    # without the limit the faster one leads
    [unlimited] = recommend(run, Limits())
    assert chosen(unlimited) == "onnxruntime-o2-int8-dynamic"


def test_overlapping_leaders_are_a_stated_tie_with_the_simpler_named_first():
    run = record(case("bf16-cast+torch-compile", (1.55, 1.70, 1.85), 0.9999, 0.5),
                 case("bf16-cast", (1.50, 1.65, 1.80), 0.9999, 0.5),
                 case("pad-to-128", (0.5, 0.6, 0.7), 1.0))  # fmt: skip
    [choice] = recommend(run, Limits(min_cosine=0.99))
    assert chosen(choice) == "bf16-cast"
    assert [c.technique for c in choice.tied] == ["bf16-cast+torch-compile"]
    assert "overlap, so the data cannot rank them" in choice.reason
    assert choice.head_to_head() == ('perfgate.measure("minilm", "bf16-cast+torch-compile", baseline="bf16-cast", '
                                     'batch_size=8, device="cpu")')  # fmt: skip


def test_fp32_stays_when_no_qualifying_candidate_is_faster_with_confidence():
    run = record(case("attention-sdpa", (0.97, 1.01, 1.05), 1.0), case("int8", (2.0, 2.2, 2.4), 0.9, 0.4))
    [choice] = recommend(run, Limits(min_cosine=0.99))
    assert choice.chosen is None
    assert choice.reason.startswith("fp32 eager stays: no candidate that meets the limits is faster with confidence")


def test_a_limit_that_was_not_measured_excludes_the_candidate():
    run = record(case("torchao-int8-dynamic", (1.2, 1.3, 1.4), 0.995, memory=None, task_low=None))
    [choice] = recommend(run, Limits(max_memory_ratio=1.0, min_task_delta=-0.02))
    assert choice.chosen is None
    assert choice.left_out[0].missed == ("memory not measured", "task accuracy not measured")


def test_the_pareto_front_keeps_what_nothing_beats_on_speed_cosine_and_memory():
    run = record(case("a", (3.0, 3.2, 3.4), 0.98, 0.5), case("b", (1.5, 1.6, 1.7), 0.9999, 0.9),
                 case("c", (1.4, 1.5, 1.6), 0.99, 1.0), case("d", (1.0, 1.1, 1.2), 0.97, 0.3))  # fmt: skip
    [choice] = recommend(run, Limits())
    assert [c.technique for c in choice.front] == ["a", "b", "d"]  # c: slower, less faithful, larger than b


def test_batch_sizes_are_chosen_apart_and_can_be_narrowed():
    run = record(case("bf16-cast", (1.5, 1.6, 1.7), 0.9999, batch_size=1), case("int8", (2.0, 2.2, 2.4), 0.995))
    choices = recommend(run, Limits())
    assert [(c.batch_size, c.chosen.technique if c.chosen else None) for c in choices] == [
        (1, "bf16-cast"),
        (8, "int8"),
    ]
    assert [c.batch_size for c in recommend(run, Limits(), batch_size=8)] == [8]


def test_the_command_exits_1_naming_the_limit_that_excluded_the_most(tmp_path, capsys):
    path = tmp_path / "results.json"
    record(case("a", (3.0, 3.2, 3.4), 0.95), case("b", (1.5, 1.6, 1.7), 0.97),
           case("c", (1.4, 1.5, 1.6), 0.999, 1.4)).save(path)  # fmt: skip
    assert main(["recommend", str(path), "--min-cosine", "0.99", "--max-memory-ratio", "1.0",
                 "--json", str(tmp_path / "r.json")]) == 1  # fmt: skip
    captured = capsys.readouterr()
    assert "the cosine limit excluded the most" in captured.err
    assert "**fp32 eager stays: no candidate meets every limit.**" in captured.out
    assert (tmp_path / "r.json").is_file()
    record(case("b", (1.5, 1.6, 1.7), 0.999, 0.6)).save(path)
    assert main(["recommend", str(path), "--min-cosine", "0.99"]) == 0
    assert "**Ship b** (1.60x [1.50, 1.70], cosine 0.9990, memory 0.60x)" in capsys.readouterr().out


PAID_OFF = ["bf16-cast", "torch-dynamic-int8-per-channel", "torchao-int8-dynamic", "attention-sdpa",
            "attention-sdpa-math", "torch-compile", "onnxruntime-o2"]  # fmt: skip


def test_stacks_worth_measuring_follow_the_rules_and_leave_out_what_the_run_measured():
    run = record(*[case(name, (1.2, 1.3, 1.4), 0.999, 0.8) for name in PAID_OFF],
                 case("bf16-cast+torch-compile", (1.5, 1.6, 1.7), 0.999, 0.5))  # fmt: skip
    [choice] = recommend(run, Limits(min_cosine=0.99))
    stacks = choice.next_stacks
    assert "bf16-cast+torch-compile" not in stacks  # measured in this run
    assert "torch-dynamic-int8-per-channel+torch-compile" in stacks  # compile after the weights change
    assert "torch-compile+bf16-cast" not in stacks
    assert not any(s.startswith("onnxruntime-o2+") for s in stacks)  # an artifact builder comes last
    assert "torch-dynamic-int8-per-channel+torchao-int8-dynamic" not in stacks  # one quantizer
    assert not any(s.endswith("+attention-sdpa") for s in stacks)  # it loads the weights: first or not at all


def suggested_stacks() -> list[str]:
    run = record(*[case(name, (1.2, 1.3, 1.4), 0.999, 0.8) for name in PAID_OFF])
    [choice] = recommend(run, Limits(min_cosine=0.99))
    return choice.next_stacks


def apply_on_tiny_bert(name: str, tmp_path) -> None:
    from fixtures.models import sources
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.model import load_model

    stack = get_technique(name)
    tiny = next(source for source in sources() if source.name == "tiny-bert")
    if stack.unavailable_reason(tiny.task, "cpu"):
        pytest.skip(stack.unavailable_reason(tiny.task, "cpu"))  # a library this pin set lacks
    model = load_model("tiny-bert", tiny.task, tiny.resolve(tmp_path / "models"), "cpu", "copied")
    stack.prepare(model, tmp_path / "artifacts")
    variant = stack.apply(model, tmp_path / "artifacts", None)
    assert variant.run(model.inputs(["a sentence to serve", "and another"], None)).shape[0] == 2


def test_suggested_stacks_include_every_kind_of_part():
    stacks = suggested_stacks()
    assert len(stacks) >= 5
    assert any("torch-compile" in s for s in stacks)
    assert any("onnxruntime" in s for s in stacks)


# Compiling takes 26-67 s a stack on these machines: the stacks that end in torch.compile apply in the
# nightly selection; the rest (0.1-3.4 s each) in every run.
@pytest.mark.parametrize(
    "name",
    [pytest.param(s, marks=pytest.mark.slow) if "torch-compile" in s else s for s in suggested_stacks()],
)
def test_every_suggested_stack_applies_on_tiny_bert(name, tmp_path):
    apply_on_tiny_bert(name, tmp_path)


@pytest.mark.parametrize(
    ("parts", "rule"),
    [
        ("bf16-cast+torch-dynamic-int8-per-channel", "takes fp32 weights only"),
        ("torch-compile+onnxruntime-o2", "hands on no torch module"),
        ("attention-sdpa-math+torch-compile", "hands on no torch module"),
        ("onnxruntime-o2+bf16-cast", "serves from its own artifact"),
        ("bf16-cast+attention-sdpa", "loads the weights itself"),
        ("attention-sdpa+attention-sdpa-math", "one attention implementation"),
        ("bf16-cast+fp16-cast", "one dtype change"),
        ("torch-dynamic-int8-per-channel+torchao-int8-dynamic", "one quantizer"),
        ("torch-compile+bf16-cast", None),  # caught first: compile hands on no module
    ],
)
def test_each_stack_rule_names_what_it_refuses(parts, rule):
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.techniques.stack import stack_rule_violation

    violation = stack_rule_violation([get_technique(name) for name in parts.split("+")])
    assert violation is not None
    assert violation.startswith(parts + ":")
    if rule:
        assert rule in violation


def test_a_stack_the_rules_allow_has_no_violation():
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.techniques.stack import stack_rule_violation

    for parts in ("attention-sdpa+bf16-cast+torch-compile", "torch-dynamic-int8-per-channel+onnxruntime-o2"):
        assert stack_rule_violation([get_technique(name) for name in parts.split("+")]) is None


def test_a_planted_fault_its_test_expected_is_no_candidate():
    planted = case("planted-three-of-six-layers", (1.8, 1.9, 2.0), 0.999, 0.5)
    planted.verdict, planted.test_outcome = Verdict.FAIL, "passed"  # the test asserted the FAIL
    [choice] = recommend(record(planted, case("b", (1.2, 1.3, 1.4), 0.999, 0.6)), Limits(min_cosine=0.99))
    assert choice.chosen is not None
    assert choice.chosen.technique == "b"
    assert "planted-three-of-six-layers" not in [c.technique for c in choice.left_out + choice.front]
    planted.test_outcome = "failed"  # a FAIL nobody expected is a candidate like any other (and the faster)
    [choice] = recommend(record(planted, case("b", (1.2, 1.3, 1.4), 0.999, 0.6)), Limits(min_cosine=0.99))
    assert choice.chosen is not None
    assert choice.chosen.technique == "planted-three-of-six-layers"
