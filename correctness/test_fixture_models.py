"""The embedded default models are what they claim: deterministic, loadable, and (MiniLM) really trained."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from fixtures.models import DATA, sources
from perfgate.instruments.fidelity import load_labelled_set, task_score
from perfgate.subjects.model import load_model

pytestmark = pytest.mark.cpu
SOURCES = {s.name: s for s in sources()}
DEFAULT = [s.name for s in sources() if "default" in s.tags]


def digest(directory: Path) -> str:
    sha = hashlib.sha256()
    for file in sorted(directory.iterdir()):
        sha.update(file.name.encode() + file.read_bytes())
    return sha.hexdigest()


def test_a_seeded_model_builds_to_the_same_bytes_twice(tmp_path):
    build = SOURCES["tiny-bert"].build
    assert build is not None
    build(tmp_path / "first")
    build(tmp_path / "second")
    assert digest(tmp_path / "first") == digest(tmp_path / "second")


@pytest.mark.parametrize("name", DEFAULT)
def test_each_default_model_loads_and_gives_one_finite_row_per_text(name, tmp_path_factory):
    source = SOURCES[name]
    model = load_model(name, source.task, source.resolve(tmp_path_factory.getbasetemp() / "models"))
    texts = ["A short one.", "A noticeably longer sentence, so the batch needs padding to line up."]
    output = model.run(model.inputs(texts)).numpy()
    assert output.shape[0] == len(texts)
    assert np.isfinite(output).all()


def test_minilm_finds_paraphrases_as_a_trained_model_does():
    source = SOURCES["minilm"]
    model = load_model("minilm", source.task, source.resolve(Path("unused")))
    labelled = load_labelled_set(DATA / "paraphrases.jsonl")
    score = task_score(labelled, lambda texts: model.run(model.inputs(texts)).numpy().astype(np.float64))
    # Random weights retrieve about 1/len(set) of the pairs; the real MiniLM finds nearly all.
    assert score >= 0.9, score


def test_the_hard_set_leaves_minilm_room_to_lose_and_the_gate_candidates_differ_as_built(tmp_path_factory):
    """On the hard set MiniLM is right on about 80% of queries, not all: a loss can show and an interval
    has width. The upgrade candidates: the wide feed-forward copy computes the same embeddings, the
    three-layer copy ranks far worse."""
    from fixtures.labelled import HARD_SET

    labelled = load_labelled_set(HARD_SET)
    scores, embeddings = {}, {}
    for name in ("minilm", "minilm-wide-ffn", "minilm-three-layers"):
        source = SOURCES[name]
        model = load_model(name, source.task, source.resolve(tmp_path_factory.getbasetemp() / "models"))
        embed = lambda texts, model=model: model.run(model.inputs(texts)).numpy().astype(np.float64)  # noqa: E731
        scores[name] = task_score(labelled, embed)
        embeddings[name] = embed(list(labelled.texts[:16]))
    assert 0.7 <= scores["minilm"] <= 0.9, scores
    assert scores["minilm-wide-ffn"] == scores["minilm"]
    np.testing.assert_allclose(embeddings["minilm-wide-ffn"], embeddings["minilm"], atol=1e-5)
    assert scores["minilm-three-layers"] < scores["minilm"] - 0.2, scores
