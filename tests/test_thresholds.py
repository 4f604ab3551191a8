from __future__ import annotations

from pathlib import Path

import pytest

from perfgate.errors import ConfigError, ThresholdsError
from perfgate.technique import technique_names
from perfgate.thresholds import Check, load_thresholds

TECHNIQUE = "onnxruntime-o2"
FILE = """
schema = 1
[techniques."onnxruntime-o2".default]
min_cosine = 0.999
[techniques."onnxruntime-o2".cpu]
max_memory_ratio = 2.0
[techniques."onnxruntime-o2".cpu-avx2]
min_speedup = 1.3
[techniques."onnxruntime-o2".cpu-avx2.models.minilm]
min_speedup = 1.8
[techniques."onnxruntime-o2".cpu-avx2.models."minilm/b8"]
min_speedup = 1.1
[techniques."onnxruntime-o2".default.models.minilm]
min_cosine = 0.99
"""


def write(tmp_path: Path, text: str, name: str = "thresholds.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_fields_resolve_from_default_through_family_class_and_model(tmp_path):
    file = load_thresholds([write(tmp_path, FILE)], technique_names())
    found = file.lookup(TECHNIQUE, "cpu-avx2", "tiny-bert")
    assert found.gated
    assert dict(found.values) == {"min_cosine": 0.999, "max_memory_ratio": 2.0, "min_speedup": 1.3}
    assert file.lookup(TECHNIQUE, "cpu-avx2", "minilm").values["min_speedup"] == 1.8
    assert file.lookup(TECHNIQUE, "cpu-avx2", "minilm", batch_size=8).values["min_speedup"] == 1.1
    assert file.lookup(TECHNIQUE, "cpu-avx2", "minilm", batch_size=1).values["min_speedup"] == 1.8
    assert file.lookup(TECHNIQUE, "cpu-avx2", "minilm").values["min_cosine"] == 0.99
    assert "[onnxruntime-o2.cpu-avx2]" in found.origins["min_speedup"]


def test_a_class_with_only_a_family_section_is_gated_on_the_family_values(tmp_path):
    found = load_thresholds([write(tmp_path, FILE)], technique_names()).lookup(TECHNIQUE, "cpu-amx")
    assert found.gated
    assert found.speed_bound() is None
    assert found.values["max_memory_ratio"] == 2.0


def test_an_unknown_hardware_class_is_not_gated(tmp_path):
    found = load_thresholds([write(tmp_path, FILE)], technique_names()).lookup(TECHNIQUE, "gpu-sm90")
    assert not found.gated
    assert found.speed_bound() is None
    check = Check("min_cosine", 0.5, higher_is_better=True).judge(found, "ctx")
    assert check is not None
    assert check.verdict == "ungated"


def test_a_later_file_overrides_an_earlier_one_field_by_field(tmp_path):
    user = write(tmp_path, '[techniques."onnxruntime-o2".cpu-avx2]\nmin_speedup = 1.1\n', "user.toml")
    found = load_thresholds([write(tmp_path, FILE), user], technique_names()).lookup(TECHNIQUE, "cpu-avx2")
    assert found.values["min_speedup"] == 1.1
    assert found.values["min_cosine"] == 0.999
    assert str(user) in found.origins["min_speedup"]


def test_a_more_specific_speed_rule_replaces_the_rule_in_either_spelling(tmp_path):
    text = FILE + '[techniques."onnxruntime-o2".cpu-avx2.models."tiny-bert/b8"]\nmax_slowdown = 0.1\n'
    found = load_thresholds([write(tmp_path, text)], technique_names()).lookup(TECHNIQUE, "cpu-avx2", "tiny-bert", 8)
    assert "min_speedup" not in found.values
    assert found.speed_bound() == pytest.approx(1 / 1.1)


def test_the_speed_bound_is_the_stricter_of_min_speedup_and_max_slowdown(tmp_path):
    text = '[techniques."onnxruntime-o2".cpu-avx2]\nmin_speedup = 0.8\nmax_slowdown = 0.1\n'
    found = load_thresholds([write(tmp_path, text)], technique_names()).lookup(TECHNIQUE, "cpu-avx2")
    assert found.speed_bound() == pytest.approx(1 / 1.1)


@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        ("schema = 1\n[techniques", "syntax", "fix the TOML syntax"),
        ('[techniques."onnxruntime-o2".cpu-avx2]\nmin_speedup = "fast"\n', "min_speedup", "must be a number"),
        ('[techniques."onnxruntime-o2".cpu-avx2]\nmin_cosine = 1.5\n', "min_cosine", "must be a number in [-1, 1]"),
        ('[techniques."onnxruntime-o2".cpu-avx2]\nmin_sped = 1.2\n', "min_sped", "unknown field"),
        ('[techniques."int9-magic".cpu-avx2]\nmin_speedup = 1.2\n', "int9-magic", "not a known technique"),
        ("schema = 2\n", "schema", "reads schema 1"),
        ("speed = 1\n", "top-level", "only 'schema' and 'techniques'"),
    ],
)
def test_a_malformed_file_names_the_file_the_key_and_the_fix(tmp_path, text, key, hint):
    path = write(tmp_path, text)
    with pytest.raises(ThresholdsError) as raised:
        load_thresholds([path], technique_names())
    message = str(raised.value)
    assert str(path) in message
    assert key in message
    assert hint in message
    assert isinstance(raised.value, ConfigError)
    assert isinstance(raised.value, ValueError)


def test_a_missing_file_is_a_thresholds_error_naming_it(tmp_path):
    with pytest.raises(ThresholdsError, match="does not exist"):
        load_thresholds([tmp_path / "nope.toml"], technique_names())


def test_the_shipped_file_parses_and_every_value_has_a_comment_saying_how_it_was_derived():
    path = Path(__file__).parents[1] / "fixtures" / "thresholds.toml"
    load_thresholds([path], technique_names())
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if "=" in line and not line.lstrip().startswith("#") and not line.startswith("schema"):
            assert "#" in line, f"{path}:{number}: a threshold without its derivation: {line!r}"


def test_a_capability_section_sits_between_the_family_and_the_exact_class(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        '[techniques."bf16-cast".cpu]\nmin_cosine = 0.99\n'
        '[techniques."bf16-cast".cpu-bf16-native]\nmin_speedup = 1.2\nmin_cosine = 0.995\n'
        '[techniques."bf16-cast".cpu-bf16-emulated]\nmax_slowdown = 3.0\n'
        '[techniques."bf16-cast".cpu-amx]\nmin_speedup = 1.5\n'
    )
    thresholds = load_thresholds([path], ["bf16-cast"])
    zen4 = thresholds.lookup("bf16-cast", "cpu-avx512-bf16", capability="cpu-bf16-native")
    assert dict(zen4.values) == {"min_cosine": 0.995, "min_speedup": 1.2}
    amx = thresholds.lookup("bf16-cast", "cpu-amx", capability="cpu-bf16-native")
    assert amx.values["min_speedup"] == 1.5
    zen3 = thresholds.lookup("bf16-cast", "cpu-avx2", capability="cpu-bf16-emulated")
    assert dict(zen3.values) == {"min_cosine": 0.99, "max_slowdown": 3.0}
    assert not thresholds.lookup("bf16-cast", "gpu-sm90", capability="gpu-bf16-native").gated
