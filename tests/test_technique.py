"""The technique registry: discovery by name, user registrations, stacks named by their parts."""

from __future__ import annotations

import pytest

from perfgate.errors import UnknownTechniqueError
from perfgate.technique import (
    STACK_SEPARATOR,
    Technique,
    built_in,
    get_technique,
    import_path,
    load_technique,
    register_technique,
    technique_names,
)


def test_every_technique_module_is_found_without_a_list_to_edit():
    names = built_in()
    for expected in ("fp32-eager", "torch-compile", "attention-eager", "torchao-int8-dynamic", "bitsandbytes-nf4",
                     "onnxruntime-o1-int8-static", "static-cache", "static-cache-compile", "pad-to-128"):  # fmt: skip
        assert expected in names
    for name, path in names.items():
        technique = load_technique(path)
        assert technique.name == name
        assert isinstance(technique, Technique)


def test_a_stack_resolves_to_its_parts_in_order():
    stack = get_technique("bf16-cast+torch-compile")
    assert stack.name == "bf16-cast+torch-compile"
    assert [p.name for p in stack.parts] == ["bf16-cast", "torch-compile"]  # type: ignore[attr-defined]
    assert import_path("bf16-cast+torch-compile") == f"{built_in()['bf16-cast']}+{built_in()['torch-compile']}"
    assert stack.native_math == "bf16"
    assert stack.fresh_worker


def test_an_unknown_part_of_a_stack_is_named_in_the_error():
    with pytest.raises(UnknownTechniqueError) as raised:
        import_path("bf16-cast+no-such-part")
    assert raised.value.name == "no-such-part"


def test_a_part_that_serves_from_its_own_artifact_cannot_be_followed():
    reason = get_technique("onnxruntime-o2+torch-compile").unavailable_reason("feature-extraction", "cpu")
    assert reason is not None
    assert "onnxruntime-o2 serves from its own artifact" in reason
    assert get_technique("torch-compile+onnxruntime-o2").unavailable_reason("feature-extraction", "cpu") is None


def test_a_stack_runs_only_where_every_part_runs():
    reason = get_technique("bf16-cast+torch-dynamic-int8-per-channel").unavailable_reason("feature-extraction", "cuda")
    assert reason is not None
    assert "runs on cpu, not cuda" in reason


def test_a_registered_name_may_not_contain_the_stack_separator():
    with pytest.raises(ValueError, match="joins the parts of a stack"):
        register_technique(f"a{STACK_SEPARATOR}b", "x:Y")


def test_user_registrations_join_the_built_in_names():
    register_technique("user-eager-copy", "perfgate.techniques.eager:Fp32Eager")
    assert "user-eager-copy" in technique_names()
