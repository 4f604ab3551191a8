"""The results file of one run: written atomically after every case, so a crash loses nothing.

Schema 2 (1 had fixed per-metric fields; 2 keeps them under ``metrics`` by name, and cases have
``outcome: started`` until they end)::

    {"schema_version": 2, "perfgate_version": ..., "started": ..., "updated": ...,
     "fingerprint": {...hardware and library versions...}, "config": {...effective options...},
     "cases": [CaseResult.to_dict(), ...], "calibration": {...} | null, "gates": [...] | null,
     "against_history": {case_id: {"status", "confirmed"}} | null}
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfgate.engine.record import CaseResult
from perfgate.errors import ResultsFileError

__all__ = ["SCHEMA_VERSION", "RunRecord", "merge_records", "write_atomically"]

SCHEMA_VERSION = 2


def write_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path`` and rename: readers see the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o666 & ~umask)  # mkstemp makes 0600; a report should read like any file
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


@dataclass
class RunRecord:
    fingerprint: dict[str, Any]
    config: dict[str, Any]
    cases: list[CaseResult] = field(default_factory=list)
    calibration: dict[str, Any] | None = None
    gates: list[dict[str, Any]] | None = None  # upgrade gates run from pytest (upgrade.GateResult.to_dict())
    # This run against its history, as `perfgate compare --annotate` found it: case id -> status and
    # whether a re-measurement confirmed it; the run keeps it into the history, where reports mark it.
    against_history: dict[str, dict[str, Any]] | None = None
    started: str = field(default_factory=_now)
    perfgate_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "perfgate_version": self.perfgate_version,
            "started": self.started,
            "updated": _now(),
            "fingerprint": self.fingerprint,
            "config": self.config,
            "cases": [case.to_dict() for case in self.cases],
            "calibration": self.calibration,
            "gates": self.gates,
            "against_history": self.against_history,
        }

    def save(self, path: Path) -> None:
        # allow_nan: an exact match has infinite SQNR; Python's json reads it back.
        write_atomically(path, json.dumps(self.to_dict(), indent=1, default=str))

    @classmethod
    def load(cls, path: Path) -> RunRecord:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ResultsFileError(
                path, "does not exist", "check the path (a run writes it into --perfgate-report-dir, reports/latest/)"
            ) from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ResultsFileError(path, f"is not readable JSON ({error})") from None
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            found = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
            raise ResultsFileError(path, f"schema_version={found!r}, expected {SCHEMA_VERSION}")
        try:
            return cls(
                fingerprint=data["fingerprint"],
                config=data["config"],
                cases=[CaseResult.from_dict(case) for case in data["cases"]],
                calibration=data.get("calibration"),
                gates=data.get("gates"),
                against_history=data.get("against_history"),
                started=data["started"],
                perfgate_version=data.get("perfgate_version", ""),
            )
        except (KeyError, TypeError) as error:
            raise ResultsFileError(path, f"is missing or has a malformed field {error}") from None


def merge_records(records: list[RunRecord]) -> RunRecord:
    """One record from the parts of one run (xdist workers, CI shards): their cases, calibrations and gates
    together, started when the first part started. The caller checks that the parts belong together."""
    return RunRecord(
        fingerprint=records[0].fingerprint,
        config=dict(records[0].config),
        cases=[case for record in records for case in record.cases],
        calibration={key: value for r in records for key, value in (r.calibration or {}).items()} or None,
        gates=[gate for r in records for gate in (r.gates or [])] or None,
        started=min(r.started for r in records),
        perfgate_version=records[0].perfgate_version,
        against_history={k: v for r in records for k, v in (r.against_history or {}).items()} or None,
    )
