"""Which GPU this pytest process measures on, on a host with several.

With ``pytest -n N`` each xdist worker (``gw0``, ``gw1``, ...) takes one GPU in turn from the GPUs it
may use, and every worker process it starts sees only that GPU (``CUDA_VISIBLE_DEVICES``), where a
case's ``device="cuda"`` is ``cuda:0``. So case ids and history stay the same on any host, two cases
never share a GPU because they were placed there, and where xdist workers outnumber the GPUs, the
device lock (one file per GPU id) makes the ones sharing a GPU take turns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from perfgate.errors import ConfigError

__all__ = ["GpuPlacement", "choose_gpu", "parse_gpu_list", "visible_gpu_ids"]


@dataclass(frozen=True)
class GpuPlacement:
    position: int  # index among the GPUs this process sees: torch's cuda:<position> here
    visible_id: str  # how CUDA_VISIBLE_DEVICES names it; given to this process's workers

    @property
    def lock_name(self) -> str:
        return "cuda-" + re.sub(r"[^\w.-]", "_", self.visible_id)


def visible_gpu_ids(environ: Mapping[str, str], device_count: int) -> list[str]:
    """The GPUs this process sees, as ``CUDA_VISIBLE_DEVICES`` names them (indices or UUIDs)."""
    named = environ.get("CUDA_VISIBLE_DEVICES")
    if named is not None:
        return [part.strip() for part in named.split(",") if part.strip()][:device_count]
    return [str(index) for index in range(device_count)]


def parse_gpu_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ValueError("name at least one GPU, e.g. 0,1")
    return ids


def choose_gpu(xdist_worker: str | None, visible: Sequence[str], allowed: Sequence[str] | None) -> GpuPlacement | None:
    """The GPU for this pytest process: ``gwK`` takes the K-th allowed GPU, round robin; no xdist, the first.

    ``allowed`` (``--perfgate-gpus``) must name visible GPUs; None allows all of them.
    """
    if not visible:
        return None
    if allowed is None:
        allowed = list(visible)
    unknown = [gpu for gpu in allowed if gpu not in visible]
    if unknown:
        raise ConfigError(
            f"--perfgate-gpus names {', '.join(unknown)}, which this process does not see "
            f"(visible: {', '.join(visible)}); name GPUs as CUDA_VISIBLE_DEVICES does"
        )
    match = re.fullmatch(r"gw(\d+)", xdist_worker or "")
    turn = int(match.group(1)) if match else 0
    chosen = allowed[turn % len(allowed)]
    return GpuPlacement(position=list(visible).index(chosen), visible_id=chosen)


def place_device(device: str, visible: Sequence[str]) -> tuple[str, GpuPlacement | None]:
    """``cuda:N`` as a worker runs it: the device it names (``cuda``: the first visible GPU) becomes the only
    one its workers see, as ``cuda``, with that GPU's lock. A CPU device is left as it is."""
    if not device.startswith("cuda"):
        return device, None
    index = int(device.partition(":")[2] or 0)
    if index >= len(visible):
        raise ConfigError(
            f"--device {device!r}: this process sees {len(visible)} GPU(s) ({', '.join(visible) or 'none'}); "
            "name one of them as cuda:N"
        )
    return "cuda", GpuPlacement(position=index, visible_id=visible[index])
