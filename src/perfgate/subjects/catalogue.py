"""The technique catalogue: every built-in technique by name (found in ``perfgate.subjects.techniques``), the
ones a project registers, and a name or import path turned into a ``Technique`` (a stack for names
joined with ``+``). Apart from ``technique.py``, which holds the contract the techniques implement, so
that the techniques import the contract and only the catalogue imports the techniques."""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil

from perfgate.errors import UnknownTechniqueError
from perfgate.subjects.technique import STACK_SEPARATOR, Technique

__all__ = ["built_in", "get_technique", "import_path", "load_technique", "register_technique", "technique_names"]

_registered: dict[str, str] = {}


@functools.cache
def built_in() -> dict[str, str]:
    """Every ``Technique`` subclass with a ``name`` in the modules of ``perfgate.subjects.techniques``, by name."""
    import perfgate.subjects.techniques

    found: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(perfgate.subjects.techniques.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"perfgate.subjects.techniques.{info.name}")
        for cls in vars(module).values():
            if not (isinstance(cls, type) and issubclass(cls, Technique)) or inspect.isabstract(cls):
                continue
            if cls.__module__ != module.__name__ or "name" not in vars(cls):
                continue
            path = f"{module.__name__}:{cls.__qualname__}"
            if found.setdefault(cls.name, path) != path:
                raise TypeError(f"technique name {cls.name!r} is declared twice: {found[cls.name]} and {path}")
    return found


def register_technique(name: str, import_path: str) -> None:
    """Make ``name`` resolve to ``"package.module:Class"`` (imported lazily, also in subprocesses)."""
    if STACK_SEPARATOR in name:
        raise ValueError(f"technique name {name!r}: {STACK_SEPARATOR!r} joins the parts of a stack")
    _registered[name] = import_path


def _registry() -> dict[str, str]:
    return {**built_in(), **_registered}


def technique_names() -> list[str]:
    """Registered techniques; any of them joined with ``+`` names a stack."""
    return sorted(_registry())


def import_path(name: str) -> str:
    """``"package.module:Class"``, or for a stack its parts' paths joined with ``+``."""
    registry = _registry()
    paths = []
    for part in name.split(STACK_SEPARATOR):
        if part not in registry:
            raise UnknownTechniqueError(part, list(registry))
        paths.append(registry[part])
    return STACK_SEPARATOR.join(paths)


def get_technique(name: str) -> Technique:
    return load_technique(import_path(name))


def load_technique(path: str) -> Technique:
    if STACK_SEPARATOR in path:
        from perfgate.subjects.techniques.stack import Stack

        return Stack([load_technique(part) for part in path.split(STACK_SEPARATOR)])
    module_name, _, class_name = path.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(cls, type) and issubclass(cls, Technique)):
        raise TypeError(f"{path!r} is not a perfgate Technique subclass")
    return cls()
