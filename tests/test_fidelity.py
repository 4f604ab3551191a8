"""The task metric per example: a query is right only when its positive outranks every other positive
and each of its own hard negatives."""

from __future__ import annotations

import json

import numpy as np
import pytest

from perfgate.errors import ConfigError
from perfgate.instruments.fidelity import LabelledSet, load_labelled_set, paired_difference, task_outcomes, task_score

# Texts embed to fixed 2-d directions, so which one ranks first is known by construction.
VECTORS = {
    "q1": (1.0, 0.0), "p1": (0.9, 0.1), "n1": (0.95, 0.0),  # n1 sits closer to q1 than p1 does
    "q2": (0.0, 1.0), "p2": (0.1, 0.9), "n2": (1.0, -1.0),  # n2 points away from q2
}  # fmt: skip


def embed(texts):
    return np.array([VECTORS[t] for t in texts], dtype=np.float64)


def test_a_hard_negative_closer_than_the_positive_makes_its_query_wrong():
    labelled = LabelledSet("retrieval", ("q1", "q2"), targets=("p1", "p2"), negatives=(("n1",), ("n2",)))
    assert task_outcomes(labelled, embed).tolist() == [False, True]
    assert task_score(labelled, embed) == 0.5
    without = LabelledSet("retrieval", ("q1", "q2"), targets=("p1", "p2"))
    assert task_outcomes(without, embed).tolist() == [True, True]


def test_classification_outcomes_are_argmax_against_the_label():
    labelled = LabelledSet("classification", ("a", "b", "c"), labels=(0, 1, 1))
    logits = lambda texts: np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])  # noqa: E731
    assert task_outcomes(labelled, logits).tolist() == [True, True, False]


def test_negatives_are_read_per_query_and_optional(tmp_path):
    path = tmp_path / "set.jsonl"
    rows = [{"query": "q1", "positive": "p1", "negatives": ["n1"]}, {"query": "q2", "positive": "p2"}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    labelled = load_labelled_set(path)
    assert labelled.negatives == (("n1",), ())
    assert len(labelled) == 2
    path.write_text(json.dumps({"query": "q"}) + "\n")
    with pytest.raises(ConfigError, match="every line must hold either query/positive or text/label"):
        load_labelled_set(path)


OUTCOMES = np.random.default_rng(7).random(272) < 0.79  # about MiniLM's score on the hard set


def test_the_paired_interval_is_narrower_than_two_independent_ones():
    """Both models find the same examples hard: pairing keeps that shared difficulty out of the width."""
    candidate = OUTCOMES.copy()
    candidate[np.flatnonzero(OUTCOMES)[:8]] = False  # eight examples lost
    _, low, high = paired_difference(OUTCOMES, candidate, 0.9, 4000, 0)
    independent = 2 * 1.645 * np.sqrt(2 * OUTCOMES.mean() * (1 - OUTCOMES.mean()) / len(OUTCOMES))
    assert high - low < independent / 2


def test_paired_difference_refuses_outcomes_of_different_lengths():
    with pytest.raises(ValueError, match="two equal-length outcome vectors"):
        paired_difference(OUTCOMES, OUTCOMES[:10], 0.9, 100, 0)
