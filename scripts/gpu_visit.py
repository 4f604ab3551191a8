"""One GPU visit, prepared: the `gpu` selection that fits a lent machine's minutes, run twice.

A lent GPU machine is offline, starts bare, and gives a session 15 minutes of device time, 10 per command
(../shared/FIELD-NOTES.md, the device tool's README). So a visit runs one case per family, in two pytest
processes of at most 3.5 minutes each (two runs: what `perfgate thresholds derive --min-runs 2` needs),
on the seeded fixture models only (their tokenizer is the repository's own vocabulary file), with the
image's own Python and what the working tree carries, and brings back at most 8 files.

The time each case takes is a stated guess (``VisitCase.first`` on a fresh machine, ``again`` in the
second run) until a visit records wall times: then ``fixtures/gpu-visit-durations.json`` (written by a
visit as ``durations.json``, pytest-split's format) replaces the guesses for the cases it names.

    python scripts/gpu_visit.py --dry-run          # the selection, the settings and the estimate
    python scripts/gpu_visit.py --out DIR           # the visit (scripts/gpu-visit.sh calls this)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "fixtures" / "gpu-visit-durations.json"
# Where the models are built before the runs and where both runs read them: one directory, named to each
# (the session builds into <cache dir>/models), so neither run builds a model again.
CACHE_DIR = ROOT / ".cache" / "perfgate"
RUN_LIMIT_SECONDS = 210  # each pytest process: 3.5 minutes
VISIT_LIMIT_SECONDS = 480  # both, with the models built first: 8 minutes of the 10 a command may run
# The visit's own hard deadline, inside the device command's 600 s: every step gets a timeout from what is
# left, run 2 is skipped when run 1 left too little, and packing (in a finally) keeps PACK_SECONDS.
DEADLINE_SECONDS = 540
PACK_SECONDS = 15
GPU_CHECK_SECONDS = 60
STARTUP_SECONDS = 10  # a pytest process: imports, collection, GPU detection
RUNS = 2


@dataclass(frozen=True)
class VisitCase:
    nodeid: str
    family: str
    first: float  # guessed seconds in the first run (cold caches, first CUDA contexts)
    again: float  # guessed seconds in the second run
    why: str  # what the guess is made of


W = "a fresh CUDA worker (~4 s: imports, CUDA context)"
FIRST_VISIT = (
    VisitCase(
        "perf/test_precision.py::test_precision_on_a_gpu[bf16-cast]",
        "cast, energy, device memory",
        27,
        25,
        f"shared worker start, A/B 2 s, NVML energy 4 s, serving memory: 3 x {W}",
    ),
    VisitCase(
        "perf/test_precision.py::test_precision_on_a_gpu[bf16-autocast]",
        "autocast",
        12,
        12,
        "A/B 2 s, energy 4 s, the candidate's serving-memory worker (fp32's is memoized)",
    ),
    VisitCase(
        "perf/test_attention.py::test_attention_on_a_gpu[bf16-cast+attention-sdpa-cudnn]",
        "SDPA backends on bf16",
        7,
        7,
        "model loaded in the shared worker: A/B 2 s, energy 4 s",
    ),
    VisitCase(
        "perf/test_attention.py::test_flash_attention_on_a_gpu[bf16-cast+attention-sdpa-flash-bert-base-random]",
        "SDPA backends on bf16",
        7,
        7,
        "batch 1 (flash takes no padding mask)",
    ),
    VisitCase(
        "perf/test_torchao.py::test_torchao_on_a_gpu[torchao-int8-weight-only]",
        "torchao int8",
        10,
        10,
        "a quantized copy of bert-base (torchao travels as a wheel: --fetch-wheels)",
    ),
    VisitCase(
        "perf/test_torchao.py::test_torchao_on_a_gpu[torchao-float8-dynamic]",
        "float8 on nn.Linear",
        12,
        12,
        "BERT's nn.Linear layers, float8 tensor cores",
    ),
    VisitCase(
        "perf/test_generation.py::test_generation_on_a_gpu[static-cache]",
        "static cache",
        15,
        13,
        "gpt2-medium (built before the runs) loaded, forward A/B, per-token decoding both ways",
    ),
    VisitCase(
        "perf/test_largest_batch.py::test_the_largest_batch_before_cuda_runs_out_of_memory[bert-base-random]",
        "batch search under a budget",
        55,
        55,
        f"guided search, ~12 tries in all, each {W} loading bert-base",
    ),
    VisitCase(
        "perf/test_train_mixed_precision.py::test_mixed_precision_on_a_gpu[train-fp16-autocast]",
        "training with AMP and GradScaler",
        25,
        22,
        f"steps timed ABBA, train memory: 2 x {W}",
    ),
    VisitCase(
        "perf/test_loading.py::test_loading_onto_a_gpu[load-safetensors]",
        "loading with device_map",
        15,
        15,
        f"gpt2-124m (built before the runs), cold and warm loads: 3 x {W}",
    ),
)
# What does not fit the first visit's 3.5 minutes per run: the next visit's selection (--next).
NEXT_VISIT = (
    VisitCase("perf/test_compile.py::test_compile_on_a_gpu[torch-compile]", "compile default", 85, 80,
              "a fresh worker; three cold compiles (the first length, the dynamic recompile, batch 8), ~25 s each"),
    VisitCase("perf/test_largest_batch.py::test_the_largest_batch_before_cuda_runs_out_of_memory[gpt2-medium-random]",
              "batch search on a decoder", 70, 65, f"~12 tries, each {W} loading 1.4 GB"),
    VisitCase("perf/test_stacks.py::test_stacks_on_a_gpu[bf16-cast+torch-compile]", "compile on bf16", 60, 55,
              "two cold compiles at batch 8"),
)  # fmt: skip

# Built once before the first run (a fresh machine has no model cache): guessed seconds to write them.
MODELS = {"bert-base-random": 10, "gpt2-medium-random": 30, "gpt2-124m-random": 25}
SETTINGS = ("--perfgate-budget", "2", "--perfgate-gpu-budget-gib", "2")
MARKERS = "gpu and (slow or not slow)"  # selected by node id: a slow case in the visit runs too
WHEELS = ROOT / ".whl"  # what the image lacks travels as wheels (scripts/gpu-visit.sh --fetch-wheels)
TRAVEL_LIMIT_BYTES = 64 * 2**20  # the working tree and what is carried, per device call


def travelling_bytes(root: Path = ROOT) -> int:
    """What a device call sends: the files git tracks or would track, and the carried wheels. The GPU
    machine gets a bare copy of the tree, with no ``.git`` and perhaps no git: there, every file in the
    copy is what travelled."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
        files = {root / name for name in listed if name}
    except (OSError, subprocess.CalledProcessError):
        files = {path for path in root.rglob("*") if ".git" not in path.relative_to(root).parts[:1]}
    files |= set((root / WHEELS.name).glob("*.whl"))
    return sum(path.stat().st_size for path in files if path.is_file())


def recorded_durations(path: Path = RECORDED) -> dict[str, float]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise SystemExit(f"{path}: not JSON ({error}); delete it or write it from a visit's durations.json") from None
    return {str(k): float(v) for k, v in data.items()}


def estimate(recorded: dict[str, float], selection: tuple[VisitCase, ...] = FIRST_VISIT) -> dict[str, float]:
    """Seconds: building the models, each run, and the whole visit; recorded wall times over guesses."""
    first = STARTUP_SECONDS + sum(recorded.get(c.nodeid, c.first) for c in selection)
    again = STARTUP_SECONDS + sum(recorded.get(c.nodeid, c.again) for c in selection)
    build = float(sum(MODELS.values()))
    return {"build": build, "first_run": first, "second_run": again, "total": build + first + again}


def plan_text(recorded: dict[str, float], selection: tuple[VisitCase, ...] = FIRST_VISIT) -> str:
    figures = estimate(recorded, selection)
    lines = [f"GPU visit: {len(selection)} cases, run {RUNS} times ({' '.join(SETTINGS)})", ""]
    for case in selection:
        source = f"recorded {recorded[case.nodeid]:.0f} s" if case.nodeid in recorded else (
            f"guess {case.first:.0f}/{case.again:.0f} s")  # fmt: skip
        lines.append(f"  {case.nodeid}\n      {case.family}: {source} ({case.why})")
    lines += [
        "",
        f"models built first: {', '.join(MODELS)} (~{figures['build']:.0f} s)",
        f"estimate: first run {figures['first_run']:.0f} s, second run {figures['second_run']:.0f} s "
        f"(each at most {RUN_LIMIT_SECONDS} s), visit {figures['total'] / 60:.1f} min "
        f"(at most {VISIT_LIMIT_SECONDS / 60:.0f} min)",
        "times: "
        + (f"recorded at {RECORDED.relative_to(ROOT)}" if recorded else "stated guesses (no visit recorded yet)"),
        f"travels: {travelling_bytes() / 2**20:.1f} MiB (at most {TRAVEL_LIMIT_BYTES / 2**20:.0f}), wheels: "
        f"{', '.join(p.name.split('-')[0] for p in sorted(WHEELS.glob('*.whl'))) or 'none (--fetch-wheels)'}",
    ]
    left = [case for case in (*FIRST_VISIT, *NEXT_VISIT) if case not in selection]
    if left:
        lines += ["", "not in this visit (they do not fit its minutes):"]
        lines += [f"  {case.nodeid} ({case.family}, guess {case.again:.0f} s)" for case in left]
    return "\n".join(lines)


def over_limits(recorded: dict[str, float], selection: tuple[VisitCase, ...] = FIRST_VISIT) -> list[str]:
    figures = estimate(recorded, selection)
    problems = [
        f"run {n}: {figures[key]:.0f} s over {RUN_LIMIT_SECONDS} s"
        for n, key in ((1, "first_run"), (2, "second_run"))
        if figures[key] > RUN_LIMIT_SECONDS
    ]
    if figures["total"] > VISIT_LIMIT_SECONDS:
        problems.append(f"visit: {figures['total']:.0f} s over {VISIT_LIMIT_SECONDS} s")
    if travelling_bytes() > TRAVEL_LIMIT_BYTES:
        problems.append(f"the working tree and wheels: {travelling_bytes() / 2**20:.0f} MiB over 64 MiB")
    return problems


def pytest_command(
    python: str, run: int, out: Path, selection: tuple[VisitCase, ...] = FIRST_VISIT, load_plugin: bool = False
) -> list[str]:
    """One run's pytest; ``load_plugin`` where perfgate is not installed (the image: no entry point)."""
    plugin = ["-p", "perfgate.plugin"] if load_plugin else []
    return [
        python, "-m", "pytest", *plugin, *[case.nodeid for case in selection], "-m", MARKERS, *SETTINGS,
        "--perfgate-report-dir", str(out / f"run{run}"), "--junitxml", str(out / f"run{run}" / "junit.xml"),
        "--perfgate-cache-dir", str(CACHE_DIR),
        "-p", "no:cacheprovider", "-o", "addopts=", "--timeout", str(RUN_LIMIT_SECONDS + 60),
    ]  # fmt: skip


def plugin_installed(python: str) -> bool:
    """Whether ``python`` has perfgate's pytest11 entry point (an interpreter that fails to say: no)."""
    code = "import importlib.metadata as m; print(any(e.name == 'perfgate' for e in m.entry_points(group='pytest11')))"
    found = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    return found.stdout.strip() == "True"


def build_models_command(python: str, models: list[str] | None = None) -> list[str]:
    """Writes the seeded models into the runs' cache (``CACHE_DIR``) before them, so no run pays for it."""
    code = (
        "import sys; sys.path[:0] = ['.', 'src']\n"
        "from pathlib import Path\n"
        "from fixtures.models import sources\n"
        f"for source in sources():\n    if source.name in {sorted(models or MODELS)!r}:\n"
        f"        print(source.resolve(Path({str(CACHE_DIR / 'models')!r})))\n"
    )
    return [python, "-c", code]


def finished_durations(work: Path) -> dict[str, float]:
    """Per test, its wall time: from the runs' JUnit reports, or, for a run ended before pytest wrote its
    report (a timeout), from the cases its results.json recorded as they finished."""
    durations = junit_durations([work / f"run{n}" / "junit.xml" for n in range(1, RUNS + 1)])
    for run in range(1, RUNS + 1):
        results = work / f"run{run}" / "results.json"
        if (work / f"run{run}" / "junit.xml").is_file() or not results.is_file():
            continue
        try:
            cases = json.loads(results.read_text()).get("cases", [])
        except ValueError:
            continue
        per_test: dict[str, float] = {}
        for case in cases:
            if case.get("nodeid") and case.get("outcome") != "started":
                per_test[case["nodeid"]] = per_test.get(case["nodeid"], 0.0) + float(case.get("wall_seconds", 0))
        for nodeid, seconds in per_test.items():
            durations[nodeid] = max(durations.get(nodeid, 0.0), seconds)
    return durations


def junit_durations(paths: list[Path]) -> dict[str, float]:
    """Per test that ran, the longest wall time over the runs' JUnit reports (pytest-split's nodeid -> seconds)."""
    durations: dict[str, float] = {}
    for path in paths:
        if not path.is_file():
            continue
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            if case.find("skipped") is not None:
                continue  # a skip's time says nothing about the case's
            module = case.get("classname", "").replace(".", "/") + ".py"
            nodeid = f"{module}::{case.get('name')}"
            durations[nodeid] = max(durations.get(nodeid, 0.0), float(case.get("time", 0)))
    return durations


def pack(out: Path, work: Path) -> None:
    """At most 8 files come back: the runs' results and summaries, the durations, the log, one tar.gz."""
    for run in range(1, RUNS + 1):
        for name in ("results.json", "summary.md"):
            source = work / f"run{run}" / name
            if source.is_file():
                (out / f"run{run}-{name}").write_bytes(source.read_bytes())
    (out / "durations.json").write_text(json.dumps(finished_durations(work), indent=1))
    with tarfile.open(out / "logs.tar.gz", "w:gz") as archive:
        for path in sorted(work.rglob("*")):
            if path.is_file() and (path.suffix in (".log", ".xml", ".html") or path.name == "job-summary.md"):
                archive.add(path, arcname=str(path.relative_to(work)))


class Deadline:
    """Seconds left of the visit's deadline, and the timeout a step may have from them."""

    def __init__(self, seconds: float, clock: Any = time.monotonic) -> None:
        self.clock, self.end = clock, clock() + seconds

    def left(self) -> float:
        return self.end - self.clock()

    def timeout(self, limit: float) -> float:
        return max(0.0, min(limit, self.left() - PACK_SECONDS))


def run_step(command: list[str], log: Any, timeout: float, **kwargs: Any) -> int:
    """A step in its own process group, ended (SIGTERM, then SIGKILL) at its timeout: exit 124 then."""
    import signal

    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        return 124


def visit(
    python: str, out: Path, selection: tuple[VisitCase, ...] = FIRST_VISIT, deadline_seconds: float = DEADLINE_SECONDS,
    models: list[str] | None = None, require_gpu: bool = True,
) -> int:  # fmt: skip
    """The visit, within ``deadline_seconds``: a GPU must be seen first (``require_gpu=False``, on CPU, to
    try the plumbing: every case skips), then the models are built and the runs made while time is left;
    whatever exists is packed in any case (at most 8 files)."""
    deadline = Deadline(deadline_seconds)
    work = out / "work"
    (work / "tmp").mkdir(parents=True, exist_ok=True)
    paths = [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, paths)), "PERFGATE_KEEP_FAILED_WORKER_LOGS": "1"}  # fmt: skip
    recorded = recorded_durations()
    status = 1
    with (out / "visit.log").open("w") as log:
        try:
            print(plan_text(recorded, selection), file=log, flush=True)
            seen = run_step([python, "-m", "perfgate", "gpus", "--require"], log,
                            deadline.timeout(GPU_CHECK_SECONDS), cwd=ROOT, env=env)  # fmt: skip
            if seen != 0 and require_gpu:
                print(f"no GPU seen (perfgate gpus --require: exit {seen}): nothing measured", file=log, flush=True)
                return 3
            if seen != 0:
                print(f"no GPU seen (exit {seen}): going on without one, every case skips", file=log, flush=True)
            built = run_step(build_models_command(python, models), log, deadline.timeout(VISIT_LIMIT_SECONDS), cwd=ROOT,
                             env=env)  # fmt: skip
            print(f"models built (exit {built}), {deadline.left():.0f} s left", file=log, flush=True)
            if built != 0:
                return built
            figures = estimate(recorded, selection)
            load_plugin = not plugin_installed(python)
            status = 0
            for run in range(1, RUNS + 1):
                needed = figures["first_run" if run == 1 else "second_run"]
                if run > 1 and deadline.timeout(RUN_LIMIT_SECONDS) < needed:
                    print(f"run {run} skipped: {deadline.left():.0f} s left, it needs ~{needed:.0f} s",
                          file=log, flush=True)  # fmt: skip
                    break
                (work / f"run{run}").mkdir(parents=True, exist_ok=True)
                began = time.monotonic()
                command = pytest_command(python, run, work, selection, load_plugin)
                # Run 1 may use what is left (the guesses can be short); run 2 comes only where it fits.
                limit = deadline_seconds if run == 1 else RUN_LIMIT_SECONDS
                code = run_step(command, log, deadline.timeout(limit), cwd=ROOT, env=env)
                ended = "timed out (the visit's deadline)" if code == 124 else f"exit {code}"
                print(f"run {run}: {ended} in {time.monotonic() - began:.0f} s", file=log, flush=True)
                status = status or code
            return status
        finally:
            print(f"packing with {deadline.left():.0f} s left", file=log, flush=True)
            log.flush()
            pack(out, work)
            shutil.rmtree(work, ignore_errors=True)  # only the packed files come back


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="print the selection and the estimate; run nothing")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "reports/gpu-visit")))
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest (the image's)")
    parser.add_argument("--next", action="store_true", help="the next visit's selection (what the first leaves out)")
    parser.add_argument(
        "--deadline",
        type=float,
        default=DEADLINE_SECONDS,
        help=f"seconds the whole visit may take, packing included ({DEADLINE_SECONDS:g})",
    )
    parser.add_argument("--models", help=f"comma-separated models to build first (default: {','.join(MODELS)})")
    parser.add_argument(
        "--without-gpu",
        action="store_true",
        help="go on when no GPU is seen (to try the visit's plumbing on CPU: every case skips)",
    )
    args = parser.parse_args(argv)
    selection = NEXT_VISIT if args.next else FIRST_VISIT
    recorded = recorded_durations()
    print(plan_text(recorded, selection))
    problems = over_limits(recorded, selection)
    for problem in problems:
        print(f"over the visit's limits: {problem}", file=sys.stderr)
    if args.dry_run or problems:
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",") if args.models else None
    return visit(args.python, args.out, selection, args.deadline, models, require_gpu=not args.without_gpu)


if __name__ == "__main__":
    sys.exit(main())
