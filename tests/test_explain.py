"""``perfgate explain``: the diff on planted samples, then both sides profiled for real on the micro
model with planted causes, which the diff must name first."""

from __future__ import annotations

import pytest

from perfgate.answers.explain import EXPLAINED_SHARE, diff, explain_case, markdown
from perfgate.errors import PerfgateError
from perfgate.instruments.profiling import runtime_op_rounds

LINEAR = ("aten::addmm", "[[8, 64], [64, 64]]")
GELU = ("aten::gelu", "[[8, 64]]")
MATMUL = ("aten::mm", "[[768, 768], [768, 768]]")


def rounds(ops: dict[tuple[str, str], float], count: int = 6, wobble: float = 0.02) -> list[dict]:
    """Self seconds per call per round, each op moved a little round by round."""
    return [{key: value * (1 + wobble * ((i % 3) - 1)) for key, value in ops.items()} for i in range(count)]


def test_a_planted_op_is_named_first_with_its_share_and_what_is_left_is_said():
    base = {LINEAR: 100e-6, GELU: 20e-6}
    samples = {"baseline": rounds(base), "candidate": rounds({**base, MATMUL: 300e-6, GELU: 24e-6})}
    explanation = diff("micro/planted/b1/cpu", samples, calls=10)
    first = explanation.ops[0]
    assert (first.name, first.status) == ("aten::mm", "appeared")
    assert first.share == pytest.approx(300 / 304, rel=0.02)
    assert first.baseline == (0.0, 0.0, 0.0)
    assert first.candidate[1] < 300e-6 < first.candidate[2]
    assert explanation.listed == 1  # it alone explains more than EXPLAINED_SHARE
    assert explanation.unexplained == pytest.approx(4e-6, rel=0.05)
    text = markdown(explanation, "cpu-test")
    assert "| `aten::mm` | `[[768, 768], [768, 768]]` | - |" in text
    assert "appeared **explains**" in text
    assert "The first 1 ops explain 99% of the change" in text


def test_ops_that_vanish_are_named_and_a_faster_side_lists_what_got_faster():
    base = {LINEAR: 100e-6, GELU: 20e-6, ("aten::copy_", "[[8, 64], [8, 64]]"): 50e-6}
    faster = {LINEAR: 60e-6, GELU: 20e-6}
    explanation = diff("micro/x/b1/cpu", {"baseline": rounds(base), "candidate": rounds(faster)}, calls=10)
    assert explanation.change == pytest.approx(-90e-6, rel=0.01)
    assert [(op.name, op.status) for op in explanation.ops[:2]] == [
        ("aten::copy_", "vanished"),
        ("aten::addmm", "faster"),
    ]
    assert explanation.listed == 2
    assert sum(op.share for op in explanation.ops[: explanation.listed]) >= EXPLAINED_SHARE


def planted_case(tmp_path, micro_model_dir, technique: str):
    texts = ["a sentence about the weather", "another"]
    probe = {"location": str(micro_model_dir), "task": "text-classification",
             "technique_path": f"tests.planted:{technique}", "timed_texts": texts}  # fmt: skip
    name = {"ExtraMatmul": "planted-extra-matmul", "DtypeRoundTrip": "planted-dtype-round-trip",
            "UnfusedLinear": "planted-unfused-linear"}[technique]  # fmt: skip
    # one thread: a neighbour process on a 2-core runner stalls a two-thread op whenever it takes a core
    return explain_case(f"micro/{name}/b2/cpu", probe, tmp_path / "out", rounds=6, calls=5, threads=1)


def test_explain_names_a_planted_matmul_first_on_a_real_profile(tmp_path, micro_model_dir):
    explanation = planted_case(tmp_path, micro_model_dir, "ExtraMatmul")
    first, table = explanation.ops[0], markdown(explanation, "cpu")
    assert (first.name, first.shapes, first.status) == ("aten::mm", "[[768, 768], [768, 768]]", "appeared"), table
    assert first.share > 0.5, table
    assert all((tmp_path / "out" / f"{side}.trace.json").is_file() for side in ("baseline", "candidate"))
    assert explanation.seconds > 0


def test_explain_names_the_casts_of_a_planted_dtype_round_trip(tmp_path, micro_model_dir):
    explanation = planted_case(tmp_path, micro_model_dir, "DtypeRoundTrip")
    first = explanation.ops[0]
    assert first.name in ("aten::copy_", "aten::_to_copy"), markdown(explanation, "cpu")
    assert first.shapes.startswith("[[512, 512]"), first
    assert first.status == "appeared"


def test_explain_names_the_fused_addmm_an_unfused_linear_lost_and_the_mm_and_add_it_became(tmp_path, micro_model_dir):
    explanation = planted_case(tmp_path, micro_model_dir, "UnfusedLinear")
    by_status: dict[str, set[str]] = {}
    for op in explanation.ops:
        by_status.setdefault(op.status, set()).add(op.name)
    table = markdown(explanation, "cpu")
    assert "aten::addmm" in by_status.get("vanished", set()), table
    assert {"aten::mm", "aten::add"} <= by_status.get("appeared", set()), table


def test_after_the_ops_that_explain_the_change_the_rest_come_by_how_much_they_moved_either_way():
    base = {LINEAR: 100e-6, GELU: 20e-6}
    after = {("quantized::linear_dynamic", "[[8, 64], [], []]"): 150e-6, GELU: 10e-6}  # addmm vanished
    explanation = diff("micro/int8/b1/cpu", {"baseline": rounds(base), "candidate": rounds(after)}, calls=10)
    assert [op.name for op in explanation.ops] == ["quantized::linear_dynamic", "aten::addmm", "aten::gelu"]
    assert explanation.listed == 1
    assert explanation.ops[1].status == "vanished"


def test_onnx_runtime_s_own_profile_is_split_into_the_profiled_rounds_without_the_warm_up():
    def run(start: int, duration: int) -> dict:
        return {"cat": "Session", "name": "model_run", "ts": start, "dur": duration}

    def node(start: int, op: str, duration: int) -> dict:
        return {"cat": "Node", "name": f"{op}_1_kernel_time", "ts": start, "dur": duration,
                "args": {"op_name": op, "input_type_shape": [{"float": [2, 7, 32]}]}}  # fmt: skip

    warm_up = [run(0, 100), node(10, "MatMul", 999)]
    # two rounds of two calls: MatMul 40 then 60 µs in round one; 20 and 20 in round two, plus a Softmax
    profiled = [run(1000, 100), node(1010, "MatMul", 40), run(2000, 100), node(2010, "MatMul", 60),
                run(3000, 100), node(3010, "MatMul", 20), node(3050, "Softmax", 10), run(4000, 100),
                node(4010, "MatMul", 20),  # and a fence, not a kernel: left out
                {"cat": "Node", "name": "MatMul_1_fence_before", "ts": 4001, "dur": 5}]  # fmt: skip
    found = runtime_op_rounds([*warm_up, *profiled], rounds=2, calls=2)
    shapes = "[{'float': [2, 7, 32]}]"
    assert found == [
        {("ort::MatMul", shapes): pytest.approx(50e-6)},
        {("ort::MatMul", shapes): pytest.approx(20e-6), ("ort::Softmax", shapes): pytest.approx(5e-6)},
    ]
    with pytest.raises(PerfgateError, match="holds 4 runs, fewer than the 6 profiled"):
        runtime_op_rounds(profiled, rounds=3, calls=2)
