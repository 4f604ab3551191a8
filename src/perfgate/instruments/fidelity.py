"""How close a technique's outputs stay to the fp32 eager reference on the same inputs.

Output metrics (cosine, max abs error, top-1 agreement, SQNR) compare primary outputs row by row. The
task metric (paraphrase retrieval accuracy, classification accuracy) runs on a labelled set and is
judged relative to fp32, as MLPerf states its targets ("at least 99% of fp32").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perfgate.errors import ConfigError
from perfgate.instruments.outcome import Verdict

__all__ = [
    "Fidelity",
    "LabelledSet",
    "compare_outputs",
    "load_labelled_set",
    "non_inferiority",
    "paired_difference",
    "task_comparison",
    "task_outcomes",
    "task_score",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Fidelity:
    cosine_min: float
    cosine_mean: float
    max_abs_error: float
    top1_agreement: float | None  # only for logits: an embedding's largest dimension means nothing
    sqnr_db: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_outputs(reference: npt.ArrayLike, candidate: npt.ArrayLike, logits: bool = True) -> Fidelity:
    """Row-wise agreement of two ``[rows, features]`` outputs; top-1 agreement when they are logits."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, candidate {cand.shape}")
    ref, cand = ref.reshape(len(ref), -1), cand.reshape(len(cand), -1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.sum(ref * cand, axis=1) / np.maximum(norms, 1e-30)
    noise = float(np.sum((ref - cand) ** 2))
    signal = float(np.sum(ref**2))
    sqnr = math.inf if noise == 0 else 10 * math.log10(max(signal, 1e-300) / noise)
    return Fidelity(
        cosine_min=float(cosine.min()),
        cosine_mean=float(cosine.mean()),
        max_abs_error=float(np.max(np.abs(ref - cand))),
        top1_agreement=float(np.mean(ref.argmax(axis=1) == cand.argmax(axis=1))) if logits else None,
        sqnr_db=sqnr,
        rows=len(ref),
    )


@dataclass(frozen=True)
class LabelledSet:
    """``retrieval``: queries, their positives and optional hard negatives of their own;
    ``classification``: texts and integer labels."""

    kind: str
    texts: tuple[str, ...]
    targets: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()
    source: str = ""
    negatives: tuple[tuple[str, ...], ...] = ()  # per query; empty: ranked among the positives alone

    def __len__(self) -> int:
        return len(self.texts)


def load_labelled_set(path: Path) -> LabelledSet:
    """JSON lines of ``{"query", "positive"}`` (retrieval; an optional ``"negatives"`` list of hard
    negatives for that query) or ``{"text", "label"}`` (classification)."""
    try:
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"eval file {str(path)!r} cannot be read as JSON lines: {error}") from error
    if rows and all({"query", "positive"} <= row.keys() for row in rows):
        negatives = tuple(tuple(r.get("negatives", ())) for r in rows)
        return LabelledSet(
            "retrieval",
            tuple(r["query"] for r in rows),
            targets=tuple(r["positive"] for r in rows),
            source=str(path),
            negatives=negatives if any(negatives) else (),
        )
    if rows and all({"text", "label"} <= row.keys() for row in rows):
        return LabelledSet(
            "classification",
            tuple(r["text"] for r in rows),
            labels=tuple(int(r["label"]) for r in rows),
            source=str(path),
        )
    raise ConfigError(
        f"eval file {str(path)!r}: every line must hold either query/positive or text/label keys; "
        f"first line has {sorted(rows[0]) if rows else 'nothing'}"
    )


def task_score(labelled: LabelledSet, embed: Callable[[Sequence[str]], FloatArray]) -> float:
    """The task metric: the share of examples ``task_outcomes`` counts correct."""
    return float(np.mean(task_outcomes(labelled, embed)))


def task_outcomes(labelled: LabelledSet, embed: Callable[[Sequence[str]], FloatArray]) -> npt.NDArray[np.bool_]:
    """Per example, whether the model gets it right. Retrieval: the query's positive ranks first by
    cosine among all positives and the query's own hard negatives. Classification: argmax logits."""
    if labelled.kind == "retrieval":
        queries, targets = _unit_rows(embed(labelled.texts)), _unit_rows(embed(labelled.targets))
        similarity = queries @ targets.T
        positive = similarity[np.arange(len(queries)), np.arange(len(queries))]
        correct: npt.NDArray[np.bool_] = similarity.argmax(axis=1) == np.arange(len(queries))
        if labelled.negatives:
            flat = [text for own in labelled.negatives for text in own]
            owner = np.repeat(np.arange(len(queries)), [len(own) for own in labelled.negatives])
            negative_similarity = np.sum(queries[owner] * _unit_rows(embed(flat)), axis=1)
            beaten = np.zeros(len(queries), dtype=bool)
            np.logical_or.at(beaten, owner, negative_similarity >= positive[owner])
            correct &= ~beaten
        return correct
    logits = embed(labelled.texts)
    outcomes: npt.NDArray[np.bool_] = logits.argmax(axis=1) == np.asarray(labelled.labels)
    return outcomes


def paired_difference(
    current: np.ndarray[Any, Any], candidate: np.ndarray[Any, Any], confidence: float, resamples: int, seed: int
) -> tuple[float, float, float]:
    """Candidate minus current accuracy, with a paired percentile-bootstrap interval over examples:
    both scored on the same examples, so resampling pairs keeps their shared difficulty out of the width."""
    current, candidate = np.asarray(current, dtype=float), np.asarray(candidate, dtype=float)
    if current.shape != candidate.shape or current.ndim != 1 or len(current) < 2:
        raise ValueError(f"need two equal-length outcome vectors, got {current.shape} and {candidate.shape}")
    differences = candidate - current
    draws = np.random.default_rng(seed).integers(0, len(differences), size=(resamples, len(differences)))
    means = differences[draws].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(differences.mean()), float(low), float(high)


def non_inferiority(low: float, high: float, margin: float) -> Verdict:
    """A difference's interval against ``-margin``: PASS when it lies wholly above, FAIL when wholly below,
    INCONCLUSIVE when it straddles (a larger set or a wider margin decides)."""
    return Verdict.PASS if low >= -margin else Verdict.FAIL if high < -margin else Verdict.INCONCLUSIVE


TASK_CONFIDENCE = 0.90  # two-sided, so the low end is a one-sided 95% bound (as the upgrade gate's)
TASK_RESAMPLES = 5000


def task_comparison(
    labelled: LabelledSet, baseline: npt.NDArray[np.bool_], candidate: npt.NDArray[np.bool_], seed: int
) -> dict[str, Any]:
    """Both arms' per-example outcomes on one labelled set, as the task metric's figures: each accuracy,
    their ratio, and the difference with its paired bootstrap interval."""
    difference, low, high = paired_difference(baseline, candidate, TASK_CONFIDENCE, TASK_RESAMPLES, seed)
    scores = {"baseline": float(np.mean(baseline)), "candidate": float(np.mean(candidate))}
    return {
        "metric": f"{labelled.kind} accuracy",
        "source": labelled.source,
        "examples": len(labelled),
        **scores,
        "ratio": scores["candidate"] / scores["baseline"] if scores["baseline"] > 0 else None,
        "difference": difference,
        "ci_low": low,
        "ci_high": high,
        "confidence": TASK_CONFIDENCE,
    }


def _unit_rows(rows: FloatArray) -> FloatArray:
    rows = np.asarray(rows, dtype=np.float64)
    unit: FloatArray = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-30)
    return unit
