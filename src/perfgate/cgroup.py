"""A memory cgroup for one worker: a memory cap on that process alone, enforced by the kernel.

The cap counts what the kernel charges to the group: the worker's anonymous memory and the file
pages it reads into the page cache (weights it memory-maps, unless another process read them first).
Going over it gets the worker killed by the kernel's OOM killer inside its group, which the launcher
records as an ``oom`` outcome; the rest of the machine (which may have no swap) sees no pressure.

A child group is made under this process's own memory cgroup (cgroup v1 ``memory`` hierarchy, or the
unified v2 hierarchy when the memory controller is delegated to it). Making one needs write access
there, usually root; where it cannot be made, ``MemoryCgroup.create`` raises ``CgroupUnavailable``
with the reason, and callers fall back (the largest-batch search to an address-space cap) or skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any

__all__ = ["CgroupUnavailable", "MemoryCgroup", "join_in_worker"]

CGROUP_ROOT = Path("/sys/fs/cgroup")

_serial = itertools.count()


class CgroupUnavailable(Exception):
    """No memory cgroup can be made for a worker here; the message says why."""


class MemoryCgroup:
    """One child memory cgroup; ``version`` is 1 or 2 (their files differ, their meaning does not)."""

    def __init__(self, path: Path, version: int) -> None:
        self.path, self.version = path, version

    @classmethod
    def create(cls, root: Path = CGROUP_ROOT, proc_self: Path = Path("/proc/self/cgroup")) -> MemoryCgroup:
        """A new, empty group under this process's own; ``CgroupUnavailable`` says why there is none."""
        parent, version = _own_memory_group(root, proc_self)
        path = parent / f"perfgate-{os.getpid()}-{next(_serial)}"
        try:
            path.mkdir()
        except OSError as error:
            raise CgroupUnavailable(f"cannot make a memory cgroup in {parent}: {error.strerror}") from None
        group = cls(path, version)
        limit_file = path / ("memory.limit_in_bytes" if version == 1 else "memory.max")
        if not limit_file.exists():
            group.remove()
            raise CgroupUnavailable(f"{parent} gives its children no memory controller (no {limit_file.name})")
        group._no_swap()
        return group

    def _no_swap(self) -> None:
        """Over the limit means killed, never swapped: a swapping worker would measure the disk."""
        name, value = ("memory.swappiness", "0") if self.version == 1 else ("memory.swap.max", "0")
        with contextlib.suppress(OSError):
            (self.path / name).write_text(value)

    def named(self) -> dict[str, Any]:
        """How a job's payload names this group for the worker inside it (``join_in_worker``)."""
        return {"path": str(self.path), "version": self.version}

    def add(self, pid: int) -> None:
        """Move ``pid`` in; what it allocates from now on is charged here (and its children's too)."""
        (self.path / "cgroup.procs").write_text(str(pid))

    def limit(self, limit_bytes: int) -> None:
        (self.path / ("memory.limit_in_bytes" if self.version == 1 else "memory.max")).write_text(str(limit_bytes))

    def usage(self) -> int:
        return self._read_int("memory.usage_in_bytes" if self.version == 1 else "memory.current")

    def peak(self) -> int | None:
        """The group's high-water mark (v2 kernels before 5.19 keep none)."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        return self._read_int(name) if (self.path / name).exists() else None

    def cap(self, limit_bytes: int) -> None:
        """Limit the group from now on, its high-water mark started again from here."""
        self.limit(limit_bytes)
        self.reset_peak()

    def reset_peak(self) -> None:
        """Start the high-water mark again from now (v1; v2 kernels from 6.12 reset it per reader)."""
        if self.version == 1:
            (self.path / "memory.max_usage_in_bytes").write_text("0")

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed inside this group."""
        text = self._read("memory.oom_control" if self.version == 1 else "memory.events")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        failures = "memory.failcnt" if self.version == 1 else None  # kernels before 4.13: no oom_kill count
        return int(self._read(failures) or 0) if failures else 0

    def remove(self) -> None:
        """Remove the group once its processes have exited (the kernel refuses while any remain)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.rmdir()

    def _read(self, name: str) -> str:
        return (self.path / name).read_text()

    def _read_int(self, name: str) -> int:
        return int(self._read(name).split()[0])


def join_in_worker(named: dict[str, Any] | None, model_files: Path) -> tuple[MemoryCgroup, int] | None:
    """In a worker: the group the launcher moved it into, as its job's payload names it (None: no group),
    and what the group holds now (the base a budget is counted from). The model's files are evicted from
    the page cache first, so the weight pages this worker reads next are charged to it, whoever read
    them before."""
    if not named:
        return None
    from perfgate.memory import evict_from_page_cache

    if model_files.exists():
        evict_from_page_cache(model_files)
    group = MemoryCgroup(Path(named["path"]), int(named["version"]))
    return group, group.usage()


def _own_memory_group(root: Path, proc_self: Path) -> tuple[Path, int]:
    """This process's memory cgroup directory and the hierarchy's version."""
    try:
        lines = proc_self.read_text().splitlines()
    except OSError as error:
        raise CgroupUnavailable(f"cannot read {proc_self}: {error.strerror} (memory cgroups need Linux)") from None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            directory = root / "memory" / path.lstrip("/")
            if directory.is_dir():
                return directory, 1
        if controllers == "":
            unified = path
    if unified is not None:
        for base in (root, root / "unified"):
            directory = base / unified.lstrip("/")
            if "memory" in _read_words(directory / "cgroup.controllers"):
                return directory, 2
    raise CgroupUnavailable(f"no memory cgroup controller is mounted under {root} for this process")


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []
