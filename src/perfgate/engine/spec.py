"""What is measured: a frozen, hashable case spec with a stable id (results, history, repro commands)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["BASELINE", "CaseSpec"]

BASELINE = "fp32-eager"


@dataclass(frozen=True)
class CaseSpec:
    model: str
    technique: str
    batch_size: int = 1
    seq_len: int | None = None  # None: pad each batch to its longest sentence
    device: str = "cpu"
    threads: int | None = None  # None: torch's default; the count in effect is recorded
    scenario: str = "ab-forward"
    baseline: str = BASELINE  # another technique: the two measured head to head (recorded, never gated)
    world: int | None = None  # train-distributed: ranks, where not the recipe's own (2)

    @property
    def case_id(self) -> str:
        length = f"-s{self.seq_len}" if self.seq_len else ""
        scenario = "" if self.scenario == "ab-forward" else f"/{self.scenario}"
        against = "" if self.baseline == BASELINE else f"/vs-{self.baseline}"
        world = "" if self.world is None else f"/w{self.world}"
        return f"{self.model}/{self.technique}/b{self.batch_size}{length}/{self.device}{scenario}{against}{world}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseSpec:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})
