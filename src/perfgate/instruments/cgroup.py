"""A memory cgroup for one worker: a memory cap on that process alone, enforced by the kernel.

The cap counts what the kernel charges to the group: the worker's anonymous memory and the file
pages it reads into the page cache (weights it memory-maps, unless another process read them first).
Going over it gets the worker killed by the kernel's OOM killer inside its group, which the launcher
records as an ``oom`` outcome; the rest of the machine (which may have no swap) sees no pressure.

A child group is made under this process's own memory cgroup (cgroup v1 ``memory`` hierarchy, or the
unified v2 hierarchy when the memory controller is available to it). Making one needs write access
there, usually root; where it cannot be made, ``MemoryCgroup.create`` raises ``CgroupUnavailable``
with the reason, and callers fall back (the largest-batch search to an address-space cap) or skip.

On v2 the controller must also be enabled for the group's children (its ``cgroup.subtree_control``),
and the kernel refuses that for a group that holds processes. Where the group holds only this process
and its own workers, ``SubtreeDelegation`` moves them into a leaf it makes (``perfgate-home-PID``),
enables ``+memory`` there, and at exit undoes both: the controller disabled again if it enabled it,
the processes moved back, the leaf removed. A group holding anyone else's processes is left alone.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["CgroupUnavailable", "MemoryCgroup", "SubtreeDelegation", "join_in_worker"]

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
        if version == 2 and "memory" not in _read_words(parent / "cgroup.subtree_control"):
            SubtreeDelegation.enable(parent)
        path = parent / f"perfgate-{os.getpid()}-{next(_serial)}"
        try:
            path.mkdir()
        except OSError as error:
            raise CgroupUnavailable(f"cannot make a memory cgroup in {parent}: {error.strerror}") from None
        group = cls(path, version)
        limit_file = path / ("memory.limit_in_bytes" if version == 1 else "memory.max")
        if version == 1 and not limit_file.exists():
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


@dataclass
class SubtreeDelegation:
    """cgroup v2: the memory controller enabled for the children of ``group``, which this process owns
    (it and its descendants are the only processes in it). One per group per process; undone at exit."""

    group: Path
    leaf: Path
    moved: list[int] = field(default_factory=list)
    enabled: bool = False

    active: ClassVar[SubtreeDelegation | None] = None  # the one this process made, if any

    @classmethod
    def enable(cls, group: Path, pid: int | None = None) -> SubtreeDelegation:
        if cls.active is not None and cls.active.group == group:
            return cls.active
        pid = os.getpid() if pid is None else pid
        ours = {pid, *_descendants(pid)}
        held = {int(word) for word in _read_words(group / "cgroup.procs")}
        others = held - ours
        if others:
            raise CgroupUnavailable(
                f"{group} gives its children no memory controller, and enabling it (cgroup.subtree_control) "
                f"would need its {len(others)} other process(es) moved out; run perfgate in a group of its own "
                "(e.g. systemd-run --user --scope -p Delegate=yes pytest ...)"
            )
        delegation = cls(group, group / f"perfgate-home-{pid}")
        try:
            delegation.leaf.mkdir(exist_ok=True)
            for member in sorted(held & ours):
                (delegation.leaf / "cgroup.procs").write_text(str(member))
                delegation.moved.append(member)
            (group / "cgroup.subtree_control").write_text("+memory")
            delegation.enabled = True
        except OSError as error:
            delegation.undo()
            raise CgroupUnavailable(
                f"cannot enable the memory controller for the children of {group}: {error.strerror}"
            ) from None
        cls.active = delegation
        atexit.register(delegation.undo)
        return delegation

    def undo(self) -> None:
        """The controller disabled again if this enabled it, the processes moved back, the leaf removed."""
        with contextlib.suppress(OSError):
            if self.enabled:
                (self.group / "cgroup.subtree_control").write_text("-memory")
                self.enabled = False
            for member in self.moved:
                with contextlib.suppress(ProcessLookupError):
                    (self.group / "cgroup.procs").write_text(str(member))
            self.moved = []
            self.leaf.rmdir()
        if SubtreeDelegation.active is self:
            SubtreeDelegation.active = None


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def join_in_worker(named: dict[str, Any] | None, model_files: Path) -> tuple[MemoryCgroup, int] | None:
    """In a worker: the group the launcher moved it into, as its job's payload names it (None: no group),
    and what the group holds now (the base a budget is counted from). The model's files are evicted from
    the page cache first, so the weight pages this worker reads next are charged to it, whoever read
    them before."""
    if not named:
        return None
    from perfgate.instruments.memory import evict_from_page_cache

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
