"""``perfgate merge``: results of several runners (hardware classes) in one report, or the shards of one
run (a CI matrix splitting the nightly selection) joined into one results file.

One table puts each case's speedup, CI and verdict side by side per hardware class, so "does this pay
off on our GPUs and on our CPUs" reads in one place; each runner's own summary follows. Joining shards
is the xdist merge (``results.merge_records``) with the checks shards need: one hardware class, library
set and measurement settings, and no case measured twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from perfgate.errors import ConfigError
from perfgate.instruments.outcome import Outcome
from perfgate.records.results import RunRecord, merge_records
from perfgate.reports.report import markdown_summary
from perfgate.reports.sections import speed_estimate

__all__ = ["join_shards", "merged_markdown"]


def join_shards(shards: Sequence[tuple[Path, RunRecord]]) -> RunRecord:
    """One run from its shards; shards of another class, library set or setting are refused by name."""
    from perfgate.records.history import incompatibility, settings_difference

    first_path, first = shards[0]
    owner: dict[str, Path] = {}
    for path, shard in shards:
        reason = incompatibility(first.fingerprint, shard.fingerprint) or settings_difference(first, shard)
        if reason:
            raise ConfigError(
                f"shard {str(path)!r} does not belong with {str(first_path)!r}: {reason}; merge each class's "
                "shards on their own (the runners of one matrix must share a hardware class)"
            )
        for case in shard.cases:
            if case.spec.case_id in owner:
                raise ConfigError(
                    f"case {case.spec.case_id!r} is in shard {str(owner[case.spec.case_id])!r} and in "
                    f"{str(path)!r}: shards must split the selection, not repeat it (pytest-split --group)"
                )
            owner[case.spec.case_id] = path
    joined = merge_records([shard for _, shard in shards])
    joined.config["shards"] = str(len(shards))
    return joined


def _runners(runs: Sequence[tuple[Path, RunRecord]]) -> list[str]:
    """A column name per run: its hardware classes and file, numbered where two would read alike."""
    names: list[str] = []
    for path, record in runs:
        classes = record.fingerprint.get("hardware_class", {})
        name = f"{classes.get('cpu')} / {classes.get('cuda')} ({path.parent.name}/{path.name})"
        names.append(name if name not in names else f"{name} #{len(names) + 1}")
    return names


def merged_markdown(runs: Sequence[tuple[Path, RunRecord]]) -> str:
    runners = _runners(runs)
    cells: dict[tuple[str, str, int, str], dict[str, str]] = {}
    for runner, (_, record) in zip(runners, runs, strict=True):
        for case in record.cases:
            key = (case.spec.model, case.spec.technique, case.spec.batch_size, case.spec.device)
            estimate = speed_estimate(case)
            if case.outcome != Outcome.MEASURED:
                cell = f"{case.outcome}"
            elif estimate:
                interval = f"[{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]"
                cell = f"{estimate['speedup']:.2f}x {interval} {case.verdict.upper()}"
            else:
                cell = case.verdict.upper()
            cells.setdefault(key, {})[runner] = cell
    out = [
        "# perfgate: results of several runners",
        "",
        "Speedup against fp32 eager [95% CI] and verdict, per runner (hardware class cpu / cuda).",
        "",
        "| model | technique | batch | device | " + " | ".join(runners) + " |",
        "|---|---|---|---|" + "---|" * len(runners),
    ]
    for (model, technique, batch, device), found in sorted(cells.items()):
        row = " | ".join(found.get(runner, "-") for runner in runners)
        out.append(f"| {model} | {technique} | {batch} | {device} | {row} |")
    for runner, (_, record) in zip(runners, runs, strict=True):
        body = markdown_summary(record).split("\n", 1)[1]  # without its own title
        out += ["", f"## {runner}", body]
    return "\n".join(out) + "\n"
