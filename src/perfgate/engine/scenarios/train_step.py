"""A training step: a recipe against plain fp32 AdamW on the same model and the same seeded batches.

Two jobs, each in a fresh worker (a training step leaves allocator and compile state behind):

- ``train-step``, both arms in one worker: first ``EQUIVALENCE_STEPS`` steps of each from the same
  weights on the same batches (the losses must stay within the recipe's tolerance: a technique that
  changes the numbers must show it still trains), then the two arms' steps timed ABBA until the speed
  verdict is decided (``comparison.compare``, as for inference).
- ``train-memory``, one arm per worker: the peak resident memory over ``MEMORY_STEPS`` steps (the first
  step included, so what the allocator kept from it counts, as a user's process would see it; anonymous
  memory sampled from the parent), and the optimizer's state measured against what its rule predicts
  from the model's parameters.

A compiled recipe (``torch_compile``) also records what compiling costs, as the inference compile
technique does (metric ``compile``): its first step into an empty inductor cache (cold), the first step
of a fresh compile of fresh weights after ``torch._dynamo.reset()`` with that cache filled (warm: a
restarted job), the graphs compiled and the graph breaks. The memory worker compiles from that cache.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

EQUIVALENCE_STEPS = 3
MEMORY_STEPS = 3
SEQ_LEN = 64  # every batch padded to it: fixed shapes, so compile and memory see one shape
BATCHES = 8  # distinct seeded batches, cycled while timing


class TrainStep(Scenario):
    name = "train-step"
    isolation = Isolation.FRESH

    def conduct(self, case: CaseContext) -> None:
        seq_len = case.spec.seq_len or SEQ_LEN
        recipe = in_memory_recipe(case.spec.technique, self.name)
        compiled: dict[str, Any] = {}
        if recipe.torch_compile:
            from perfgate.subjects.techniques.compile import new_inductor_cache

            cache = new_inductor_cache(Path(case.payload()["workdir"]))  # this job's cold, the memory job's warm
            compiled["inductor_cache"] = str(cache)
        try:
            self._conduct(case, seq_len, compiled)
        finally:
            if compiled:
                shutil.rmtree(compiled["inductor_cache"], ignore_errors=True)

    def _conduct(self, case: CaseContext, seq_len: int, compiled: dict[str, Any]) -> None:
        from perfgate.subjects.catalogue import import_path
        from perfgate.subjects.techniques.training import TRAINING_BASELINE

        payload = case.payload(baseline=import_path(TRAINING_BASELINE), seq_len=seq_len, **compiled)
        data = case.submit(self, payload)
        if data is None:
            return
        case.result.metrics.update(data["metrics"])
        case.result.threads = data["threads"]
        if not case.memory:
            return
        from perfgate.instruments.memory import memory_ratio

        memory: dict[str, Any] = {}
        for arm, name in (("baseline", TRAINING_BASELINE), ("candidate", case.spec.technique)):
            key = (TrainMemory.name, case.spec.model, name, case.spec.batch_size, seq_len, case.spec.device)
            if key not in case.memo or arm == "candidate":
                job = case.payload(technique=import_path(name), seq_len=seq_len, **compiled)
                figures = case.submit(TrainMemory(), job)
                if figures is None:
                    return
                case.memo[key] = memory_figures(figures)
            memory[arm] = case.memo[key]
        memory.update(memory_ratio(memory["baseline"], memory["candidate"], "anon_peak", case.spec.device))
        case.result.metrics["training"]["memory"] = memory

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from dataclasses import asdict, replace

        from perfgate.instruments.comparison import ComparePolicy, compare, for_history
        from perfgate.instruments.timing import Timer, synchronizer, torch_threads
        from perfgate.subjects.catalogue import load_technique
        from perfgate.subjects.techniques.compile import compile_counters
        from perfgate.subjects.training import StepRunner, load_classifier, training_batches

        ref, device = payload["model"], payload["model"]["device"]
        recipes = {arm: recipe_of(payload[key]) for arm, key in (("baseline", "baseline"), ("candidate", "technique"))}
        use_inductor_cache(payload)
        with torch_threads(payload["threads"]) as threads:
            runners = {arm: StepRunner(load_classifier(ref["location"], device), recipe, device)
                       for arm, recipe in recipes.items()}  # fmt: skip
            tokenizer = tokenizer_of(ref["location"])
            batches = training_batches(tokenizer, list(payload["eval_texts"]), payload["batch_size"],
                                       payload["seq_len"], BATCHES, device)  # fmt: skip
            synchronize = synchronizer(device)
            first_step: dict[str, float] = {}
            losses: dict[str, list[float]] = {}
            for arm, runner in runners.items():
                began = time.perf_counter()
                losses[arm] = [runner.step(batches[0])]
                synchronize()
                first_step[arm] = time.perf_counter() - began
                losses[arm] += [runner.step(batches[i]) for i in range(1, EQUIVALENCE_STEPS)]
            graphs = compile_counters() if recipes["candidate"].torch_compile else None  # the baseline is eager
            cursor = dict.fromkeys(runners, EQUIVALENCE_STEPS)

            def step(arm: str) -> float:
                cursor[arm] += 1
                return runners[arm].step(batches[cursor[arm] % BATCHES])

            timer = Timer(synchronize=synchronize)
            policy = for_history(replace(ComparePolicy(), **payload["policy"]))  # long pairs: more budget for history
            comparison = compare(lambda: step("baseline"), lambda: step("candidate"), timer, payload["bound"], policy)
            metrics: dict[str, Any] = {}
            if graphs is not None:
                import torch

                torch._dynamo.reset()  # graphs gone, the cache directory kept: what a restarted job pays
                rerun = StepRunner(load_classifier(ref["location"], device), recipes["candidate"], device)
                began = time.perf_counter()
                rerun.step(batches[0])
                synchronize()
                metrics["compile"] = {
                    "cold_seconds": first_step["candidate"], "warm_seconds": time.perf_counter() - began,
                    "eager_first_step_seconds": first_step["baseline"], "sweep_lengths": [payload["seq_len"]],
                    "mode": "default", "dynamic": None, **graphs,
                }  # fmt: skip
        speed = comparison.to_dict()
        speed["throughput_items_per_second"] = {
            arm: payload["batch_size"] / comparison.latency(arm).p50 for arm in ("baseline", "candidate")
        }
        differences = [abs(a - b) for a, b in zip(losses["baseline"], losses["candidate"], strict=True)]
        training = {
            "recipe": asdict(recipes["candidate"]),
            "technique": load_technique(payload["technique"]).name,
            "batch_size": payload["batch_size"],
            "seq_len": payload["seq_len"],
            "losses": losses,
            "max_loss_diff": max(differences),
            "samples_per_second": speed["throughput_items_per_second"],
            "first_step_seconds": first_step,
        }
        return {"metrics": {"speed": speed, "training": training, **metrics}, "threads": threads}


class TrainMemory(Scenario):
    """One arm's peak memory over a few steps and its optimizer state, in a worker of its own."""

    name = "train-memory"
    isolation = Isolation.FRESH
    samples_memory = True

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from perfgate.instruments.memory import process_memory, release_freed_memory, reset_peak
        from perfgate.instruments.timing import torch_threads
        from perfgate.subjects.training import (
            StepRunner,
            load_classifier,
            optimizer_state_bytes,
            predicted_state_bytes,
            training_batches,
        )

        ref, device = payload["model"], payload["model"]["device"]
        recipe = recipe_of(payload["technique"])
        use_inductor_cache(payload)
        with torch_threads(payload["threads"]):
            model = load_classifier(ref["location"], device)
            runner = StepRunner(model, recipe, device)
            batches = training_batches(tokenizer_of(ref["location"]), list(payload["eval_texts"]),
                                       payload["batch_size"], payload["seq_len"], MEMORY_STEPS, device)  # fmt: skip
            release_freed_memory()
            held = process_memory()
            cuda = device.startswith("cuda")
            if cuda:
                import torch

                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            peak_reset = reset_peak()
            start = time.monotonic()
            for batch in batches:
                runner.step(batch)
            if cuda:
                torch.cuda.synchronize(device)
            end = time.monotonic()
        after = process_memory()
        device_figures = {"cuda_peak_allocated": int(torch.cuda.max_memory_allocated(device))} if cuda else {}
        shapes = [tuple(p.shape) for p in model.parameters() if p.requires_grad]
        return {
            "held": held,
            "after": after,
            "peak_rss": after.get("peak_rss") if peak_reset else None,
            "serve_window": [start, end],
            "optimizer_state_bytes": optimizer_state_bytes(runner.optimizer),
            "predicted_state_bytes": predicted_state_bytes(recipe.optim, shapes),
            "parameters": sum(p.numel() for p in model.parameters()),
            "steps": MEMORY_STEPS,
            **device_figures,
        }


def recipe_of(path: str) -> Any:
    from perfgate.subjects.catalogue import load_technique
    from perfgate.subjects.techniques.training import DistributedRecipe, TrainingRecipe

    technique = load_technique(path)
    if isinstance(technique, DistributedRecipe):
        raise TypeError(f"{technique.name} trains across processes: measure it with scenario='train-distributed'")
    if not isinstance(technique, TrainingRecipe):
        raise TypeError(f"{technique.name} is not a training recipe (techniques/training.py): the train-step "
                        "scenario measures one of the train-* techniques")  # fmt: skip
    return technique.recipe


def in_memory_recipe(technique: str, scenario: str) -> Any:
    """The technique's recipe, refused where it changes only how batches arrive: ``scenario`` serves
    batches already in memory."""
    from perfgate.subjects.catalogue import import_path

    recipe = recipe_of(import_path(technique))
    if recipe.dataloader_num_workers:
        raise TypeError(f"{technique} changes only how batches arrive, and {scenario} serves batches already in "
                        "memory: measure it with scenario='train-dataloader'")  # fmt: skip
    return recipe


def use_inductor_cache(payload: dict[str, Any]) -> None:
    """Compile into (or from) the case's own inductor cache: an honest cold compile, and nothing of
    another case's."""
    if "inductor_cache" in payload:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = payload["inductor_cache"]


def tokenizer_of(location: str) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(location)


def memory_figures(data: dict[str, Any]) -> dict[str, Any]:
    """An arm's memory figures with the anonymous peak over the steps beyond what was held before them."""
    sampled = (data.get("sampled") or {}).get("max", {})
    figures = {k: v for k, v in data.items() if k != "serve_window"}
    if "anon" in sampled and "anon" in data["held"]:
        figures["anon_peak"] = max(0, sampled["anon"] - data["held"]["anon"])
    predicted = data["predicted_state_bytes"]
    figures["state_prediction_error"] = abs(data["optimizer_state_bytes"] - predicted) / predicted if predicted else 0.0
    return figures
