"""``perfgate explain`` on an ONNX Runtime case, as a user runs it: the session's own nodes come from ONNX
Runtime's profiler (``ort::...``), so an unoptimized session set against O2 names the fused nodes that
vanished and the unfused parts that appeared. Nightly: two exports and a profiled process (about a minute)."""

from __future__ import annotations

import json

import pytest

from perfgate.cli import main


@pytest.mark.slow
@pytest.mark.requires("onnxruntime", "onnx")
def test_explain_names_the_fused_nodes_an_unoptimized_session_lacks_against_o2(tmp_path, capsys):
    out = tmp_path / "explain"
    case = "tiny-bert/planted-onnxruntime-unoptimized/b1/cpu"
    code = main(["explain", "--case", case, "--baseline", "onnxruntime-o2", "--rounds", "4", "--calls", "5",
                 "--threads", "1", "--out", str(out)])  # fmt: skip
    table = capsys.readouterr().out
    assert code == 0, table
    explanation = json.loads((out / "explain.json").read_text())
    assert explanation["baseline"] == "onnxruntime-o2"
    by_status: dict[str, set[str]] = {}
    for op in explanation["ops"]:
        by_status.setdefault(op["status"], set()).add(op["name"])
    fused = {
        "ort::Attention",
        "ort::MultiHeadAttention",
        "ort::SkipLayerNormalization",
        "ort::BiasGelu",
        "ort::FastGelu",
    }
    assert fused & by_status.get("vanished", set()), table  # O2's fusions, absent from the unoptimized graph
    assert {"ort::Softmax", "ort::Erf"} <= by_status.get("appeared", set()), table  # attention's and GELU's parts
    assert "| onnxruntime-o2 µs |" in table
