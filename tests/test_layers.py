"""The layer order of ``src/perfgate``: every module imports only from its own layer and the layers below
it, and no modules import each other in a circle. Every import counts: at the top of a module, under
``TYPE_CHECKING``, inside a function, and a registry's ``"perfgate.package.module:Class"`` string
(imported by name later). A subprocess started by module name (``-m``, ``-p``) is a process boundary,
not an import."""

from __future__ import annotations

import ast
import graphlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "perfgate"

# The rule table, lowest layer first. Each folder's __init__ docstring says what belongs there.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),  # errors.py: the exceptions every layer raises
    ("instruments",),  # clocks, statistics, memory, energy, fidelity: nothing of perfgate above them
    ("subjects",),  # what is measured: models, hardware, techniques, training, distributed recipes
    ("verdicts",),  # thresholds and the shipped bounds
    ("engine",),  # cases, scenarios, metrics, workers and their launcher, options
    ("records",),  # results files, the history of runs, exports
    ("answers",),  # recommend, upgrade gates, bisect, cross-check, explain, derive
    ("reports",),  # summary, HTML, progress, and the joins of many runs into one report
    ("plugin", "cli", "__init__", "__main__"),  # the pytest plugin, the console script, the public API
)
MAX_ENTRIES = 12
REGISTRY_PATH = re.compile(r"perfgate(?:\.\w+)+:\w+")


def layer_of(module: str) -> int:
    """``perfgate.engine.worker`` -> the index of its layer in ``LAYERS``."""
    first = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if first in names:
            return index
    raise LookupError(f"{module}: src/perfgate/{first} belongs to no layer; add it to LAYERS in {__file__}")


def module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(target: str, package: Path) -> str:
    """The module ``target`` names: itself where it is a module or package, else its parent (a name in it)."""
    relative = Path(*target.split("."))
    if (package.parent / relative).with_suffix(".py").exists() or (package.parent / relative).is_dir():
        return target
    return target.rpartition(".")[0]


def imports_of(path: Path, package: Path) -> set[str]:
    """Every perfgate module ``path`` imports, wherever and however."""
    name = module_name(path, package)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "perfgate"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base.split(".")[0] == "perfgate":
                found |= {resolve(f"{base}.{alias.name}", package) for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and REGISTRY_PATH.fullmatch(node.value):
            found.add(resolve(node.value.partition(":")[0], package))
    found.discard(name)
    return found


def import_graph(package: Path) -> dict[str, set[str]]:
    return {module_name(path, package): imports_of(path, package) for path in sorted(package.rglob("*.py"))}


def upward_imports(package: Path) -> list[str]:
    return [
        f"{module} (layer {LAYERS[layer_of(module)][0]}) imports {target} (layer {LAYERS[layer_of(target)][0]})"
        for module, targets in import_graph(package).items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(module)
    ]


def circles(package: Path) -> list[str]:
    """Every circle, one at a time: graphlib names one, then that circle's first edge is set aside."""
    graph, found = import_graph(package), []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as error:
            circle = error.args[1]  # [a, b, ..., a], each needing the one before it
            graph[circle[1]].discard(circle[0])
            path = list(reversed(circle[:-1]))  # each importing the next; from its first module in order
            start = path.index(min(path))
            found.append(" -> ".join([*path[start:], *path[:start], path[start]]))
        else:
            return found


def test_every_module_imports_only_from_its_layer_and_below():
    assert upward_imports(PACKAGE) == []


def test_no_modules_import_each_other_in_a_circle():
    assert circles(PACKAGE) == []


def test_the_package_top_holds_the_layers_and_little_else():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_ENTRIES, entries
    for entry in entries:
        layer_of(f"perfgate.{Path(entry).stem}")  # raises for a folder or module no layer names
    for names in LAYERS[1:-1]:
        docstring = ast.get_docstring(ast.parse((PACKAGE / names[0] / "__init__.py").read_text(encoding="utf-8")))
        assert "imports" in (docstring or "").lower(), (
            f"{names[0]}/__init__.py must say what belongs there and what it imports"
        )


@pytest.fixture
def planted(tmp_path):
    """A copy of the package to plant wrong imports in."""
    copy = tmp_path / "perfgate"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_an_upward_import_fails_even_when_only_a_type_or_a_function_needs_it(planted):
    timing = planted / "instruments" / "timing.py"
    timing.write_text(
        timing.read_text() + "\n\ndef _late():\n    from perfgate.reports.report import markdown_summary\n"
    )
    thresholds = planted / "verdicts" / "thresholds.py"
    thresholds.write_text(
        thresholds.read_text() + "\nif TYPE_CHECKING:\n    from perfgate.engine.record import CaseResult\n"
    )
    assert upward_imports(planted) == [
        "perfgate.instruments.timing (layer instruments) imports perfgate.reports.report (layer reports)",
        "perfgate.verdicts.thresholds (layer verdicts) imports perfgate.engine.record (layer engine)",
    ]


def test_a_registry_string_counts_as_an_import(planted):
    memory = planted / "instruments" / "memory.py"
    memory.write_text(memory.read_text() + '\nLATER = "perfgate.answers.bisect:band_line"\n')
    assert upward_imports(planted) == [
        "perfgate.instruments.memory (layer instruments) imports perfgate.answers.bisect (layer answers)"
    ]


def test_a_circle_within_one_layer_fails(planted):
    spec = planted / "engine" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _late():\n    from perfgate.engine.record import CaseResult\n")
    assert circles(planted) == ["perfgate.engine.record -> perfgate.engine.spec -> perfgate.engine.record"]


def test_a_folder_no_layer_names_is_refused(planted):
    (planted / "misc").mkdir()
    with pytest.raises(LookupError, match="src/perfgate/misc belongs to no layer; add it to LAYERS"):
        layer_of("perfgate.misc.helpers")


def test_no_module_of_the_package_is_ignored_by_git():
    # .gitignore once held "reports/" for the run's output folder, which also hid src/perfgate/reports/
    # from `git add`: a fresh clone lacked the layer's new modules while this checkout passed every test
    if not (PACKAGE.parents[1] / ".git").exists():
        pytest.skip("a copy of the tree without .git: nothing can be ignored")
    files = [str(path) for path in PACKAGE.rglob("*") if path.is_file() and "__pycache__" not in path.parts]
    command = ["git", "check-ignore", "--no-index", *files]
    done = subprocess.run(command, cwd=PACKAGE, capture_output=True, text=True, check=False)
    assert done.stdout.split() == [], "ignored by .gitignore: anchor the pattern (/reports/) so sources are kept"
