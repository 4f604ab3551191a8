from __future__ import annotations

from pathlib import Path

import pytest

from perfgate.errors import ConfigError, ThresholdsError
from perfgate.subjects.catalogue import technique_names
from perfgate.verdicts.fields import FIELDS, HARDWARE_FIELDS
from perfgate.verdicts.thresholds import SHIPPED, Check, layers, load_thresholds

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


def test_on_an_unknown_class_speed_has_no_bound_but_default_fidelity_still_judges(tmp_path):
    found = load_thresholds([write(tmp_path, FILE)], technique_names()).lookup(TECHNIQUE, "gpu-sm90")
    assert not found.gated
    assert found.speed_bound() is None
    broken = Check("min_cosine", 0.5, higher_is_better=True).judge(found, "ctx")
    assert broken is not None
    assert broken.verdict == "fail"
    assert "0.5 misses >= min_cosine 0.999" in broken.message
    good = Check("min_cosine", 0.9995, higher_is_better=True).judge(found, "ctx")
    assert good is not None
    assert good.verdict == "pass"


def test_every_field_says_whether_it_depends_on_the_hardware_and_derived_ones_have_a_rule():
    assert {"min_speedup", "max_slowdown", "max_memory_ratio", "min_batching_gain"} <= HARDWARE_FIELDS
    assert not {"min_cosine", "min_top1", "max_size_ratio", "max_compile_graphs", "max_graph_breaks"} & HARDWARE_FIELDS
    assert all(FIELDS[name].rule for name in HARDWARE_FIELDS)


def test_the_layers_are_shipped_then_ini_then_per_class_files_then_the_override(tmp_path):
    ini = write(tmp_path, FILE)
    (tmp_path / "thresholds.d").mkdir()
    per_class = write(
        tmp_path / "thresholds.d", '[techniques."onnxruntime-o2".cpu-avx2]\nmin_speedup = 1.4\n', "cpu-avx2.toml"
    )
    override = write(tmp_path, '[techniques."onnxruntime-o2".cpu-avx2]\nmin_speedup = 1.6\n', "user.toml")
    paths = layers(ini, tmp_path, override)
    assert paths == [SHIPPED, ini, per_class, override]
    found = load_thresholds(paths, technique_names()).lookup(TECHNIQUE, "cpu-avx2")
    assert found.values["min_speedup"] == 1.6
    assert layers(None, tmp_path / "elsewhere", None) == [SHIPPED]


def test_the_shipped_defaults_hold_only_hardware_independent_fields_in_default_sections():
    shipped = load_thresholds([SHIPPED], technique_names())
    for path, technique, section in shipped.class_sections():
        assert section == "default", f"{path}: {technique}.{section}"
    for technique in shipped.techniques():
        for _, name, _, _ in shipped.applicable(technique, "cpu-unknown-test"):
            assert name not in HARDWARE_FIELDS, f"{technique}: {name} depends on the hardware"
    int8 = shipped.lookup("onnxruntime-o1-int8-static", "cpu-unknown-test")
    assert (
        Check("min_cosine", 0.891, higher_is_better=True).judge(int8, "MiniLM static int8 as measured").verdict
        == "pass"
    )
    assert Check("min_cosine", 0.5, higher_is_better=True).judge(int8, "a broken int8 model").verdict == "fail"


def test_applicable_names_the_section_and_file_of_each_field_on_a_class(tmp_path):
    path = write(tmp_path, FILE)
    rows = load_thresholds([path], technique_names()).applicable(TECHNIQUE, "cpu-avx2")
    assert ("default", "min_cosine", str(path), 0.999) in rows
    assert ("cpu-avx2.models.minilm/b8", "min_speedup", str(path), 1.1) in rows
    assert [row[0] for row in rows].index("cpu") < [row[0] for row in rows].index("cpu-avx2")


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
