"""The hard retrieval set is generated, not hand-edited: the committed file is what the seed gives."""

from __future__ import annotations

from fixtures.labelled import HARD_SET, build_rows, render
from perfgate.instruments.fidelity import load_labelled_set


def test_the_committed_hard_set_is_what_the_generator_writes():
    assert HARD_SET.read_text() == render(build_rows()), "regenerate it: python -m fixtures.labelled"


def test_every_templated_query_has_three_distinct_hard_negatives_none_equal_to_its_positive():
    labelled = load_labelled_set(HARD_SET)
    templated = [i for i, own in enumerate(labelled.negatives) if own]
    assert len(templated) == 240
    assert len(labelled) == 272  # and the 32 hand-written pairs
    for i in templated:
        negatives = labelled.negatives[i]
        assert len(set(negatives)) == 3
        assert labelled.targets[i] not in negatives
        assert labelled.texts[i] not in negatives
