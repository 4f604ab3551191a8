"""``perfgate thresholds``: derive a class's bounds from stored runs, keep each bound's promise, show what gates."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from perfgate.errors import PerfgateError
from perfgate.verdicts.fields import HARDWARE_FIELDS

__all__ = ["add", "run"]


def add(commands: Any) -> None:
    thresholds = commands.add_parser("thresholds", help="derive a hardware class's thresholds; show what gates")
    actions = thresholds.add_subparsers(dest="action", required=True)
    derive = actions.add_parser(
        "derive", help="write the hardware-dependent thresholds of one class from stored runs (perfgate store)"
    )
    derive.add_argument("--history", type=Path, required=True, help="directory of stored results files")
    derive.add_argument("--class", dest="hardware_class", help="hardware class (default: this machine's CPU class)")
    derive.add_argument("--min-runs", type=int, default=3, help="refuse with fewer comparable runs (3)")
    derive.add_argument(
        "--output", type=Path, help="file to write (default: thresholds.d/CLASS.toml beside the project's ini file)"
    )
    promise = actions.add_parser(
        "keep-promise",
        help="move each bound that lets a no-effect run pass, where every value its comment records shows the "
        "effect, to the bound the rule's promise gives; without --write, list them and exit 1 when any would move",
    )
    promise.add_argument("files", type=Path, nargs="+", help="thresholds files (the project's and thresholds.d/*)")
    promise.add_argument("--write", action="store_true", help="rewrite the files in place")
    show = actions.add_parser("show", help="per technique, which fields gate on a class, from which section and file")
    show.add_argument("--class", dest="hardware_class", help="hardware class (default: this machine's CPU class)")
    show.add_argument("--thresholds", type=Path, help="a file over the project's (as --perfgate-thresholds)")
    show.add_argument(
        "--check", action="store_true",
        help="print nothing; exit 0 when the class has a derived file in thresholds.d, 1 when it has none",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from perfgate.answers.derive import derive
    from perfgate.records.history import load_history
    from perfgate.records.results import write_atomically
    from perfgate.subjects.hardware import detect
    from perfgate.verdicts.thresholds import class_files_dir, layers, load_thresholds, project_ini_thresholds

    if args.action == "keep-promise":
        return _keep_promise(args.files, args.write)
    root = Path.cwd()
    ini = project_ini_thresholds(root)
    hardware = detect()
    hardware_class = args.hardware_class or hardware.hardware_class("cpu")
    if args.action == "derive":
        if args.min_runs < 1:
            raise PerfgateError(f"--min-runs={args.min_runs}: derive from at least 1 run")
        history = load_history(args.history)
        for note in history.notes():
            print(f"perfgate thresholds derive: history {str(args.history)!r}: {note}", file=sys.stderr)
        derived = derive(history, hardware_class, args.min_runs)
        output = args.output or class_files_dir(ini, root) / f"{hardware_class}.toml"
        write_atomically(output, derived.toml())
        print(
            f"wrote {output}: {len(derived.values)} thresholds for {hardware_class} from {len(derived.runs)} runs"
            + (f"; {len(derived.left_out)} left out (in too few runs)" if derived.left_out else "")
        )
        return 0
    if args.check:
        return 0 if (class_files_dir(ini, root) / f"{hardware_class}.toml").is_file() else 1
    from perfgate.subjects.catalogue import get_technique, technique_names

    _import_project_conftest(root)  # a project's own techniques, registered there, may have thresholds
    paths = layers(ini, root, args.thresholds)
    thresholds = load_thresholds(paths, technique_names())
    print(f"hardware class {hardware_class}; files, later overriding earlier: {', '.join(map(str, paths))}")
    for technique in thresholds.techniques():
        dtype = get_technique(technique.split("+")[0]).native_math if "+" not in technique else None
        capability = hardware.capability(dtype) if dtype else None
        rows = thresholds.applicable(technique, hardware_class, capability)
        if not rows:
            continue
        hardware_rows = [row for row in rows if row[1] in HARDWARE_FIELDS or row[1] == "max_slowdown"]
        state = "speed/memory gated" if hardware_rows else "fidelity and sizes only (speed and memory UNGATED)"
        print(f"\n{technique}: {state}")
        for section, name, path, value in rows:
            print(f"  {name} = {value:g}  [{section}] {path}")
    return 0


def _keep_promise(files: list[Path], write: bool) -> int:
    from perfgate.answers.derive import keep_promises
    from perfgate.records.results import write_atomically

    moves = 0
    for path in files:
        if not path.is_file():
            raise PerfgateError(f"{path}: no such thresholds file")
        text, moved = keep_promises(path, path.read_text(encoding="utf-8"))
        for move in moved:
            print(f"{path}:{move.line} [{move.section}] {move.before} -> {move.after} "
                  f"(values {', '.join(f'{v:g}' for v in move.values)}; {move.note})")  # fmt: skip
        if moved and write:
            write_atomically(path, text)
        moves += len(moved)
    state = "moved" if write else "would move"
    print(f"perfgate thresholds keep-promise: {moves} bound(s) {state} in {len(files)} file(s)")
    return 0 if write or not moves else 1


def _import_project_conftest(root: Path) -> None:
    """Import the project's root ``conftest.py`` as pytest would, so the techniques it registers are known."""
    import importlib.util

    conftest = root / "conftest.py"
    if not conftest.is_file():
        return
    sys.path.insert(0, str(root))
    spec = importlib.util.spec_from_file_location("conftest", conftest)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("conftest", module)
    spec.loader.exec_module(module)
