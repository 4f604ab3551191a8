"""Data preloading: training epochs fed by a DataLoader over a deliberately slow dataset, loaded in the
training process (``train-adamw``, ``dataloader_num_workers=0``) against the recipe's loader workers.

One fresh worker, two models from the same weights:

1. Equivalence: one epoch per arm with no loading cost; the losses must match exactly (the workers
   deliver batches in order, so the steps are the same computation).
2. The step's compute time, on batches already in memory (median of ``COMPUTE_STEPS``), and the
   per-item cost set from it: ``compute / batch_size``, so loading a batch costs what computing on it
   costs (where prefetching can gain most) whatever the machine's speed. The cost actually paid per
   fetch is measured (a sleep overshoots), and so is the workers' start-up: from a new iterator to
   its first batch at no loading cost (median of ``STARTUP_EPOCHS``).
3. Epochs of ``STEPS_PER_EPOCH`` steps timed ABBA, each through a new iterator: non-persistent workers
   (the Trainer's default) start with each epoch and are gone when it ends, so neither arm's workers
   load while the other arm is timed. An epoch pays its workers' start-up, as a user's epoch would.
4. The speedup the two measured times predict (``training.prefetch_prediction``), and the measured
   speedup over it: the efficiency, gated from below.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

from perfgate.engine.scenarios.contract import Isolation, Scenario

if TYPE_CHECKING:
    from perfgate.engine.scenarios.contract import CaseContext, WorkerState

STEPS_PER_EPOCH = 8
COMPUTE_STEPS = 5
COST_FETCHES = 16  # fetches timed to measure the per-item cost paid
STARTUP_EPOCHS = 3
# One warm-up epoch per arm in the comparison: the equivalence epochs already warmed both up, and an
# epoch is seconds long.
EPOCH_TIMING = {"warmup_min_calls": 1, "warmup_window": 1}


class TrainDataLoader(Scenario):
    name = "train-dataloader"
    isolation = Isolation.FRESH

    def conduct(self, case: CaseContext) -> None:
        from perfgate.engine.scenarios.train_step import SEQ_LEN
        from perfgate.subjects.catalogue import import_path
        from perfgate.subjects.techniques.training import TRAINING_BASELINE

        payload = case.payload(baseline=import_path(TRAINING_BASELINE), seq_len=case.spec.seq_len or SEQ_LEN)
        data = case.submit(self, payload)
        if data is not None:
            case.result.metrics.update(data["metrics"])
            case.result.threads = data["threads"]

    def run(self, payload: dict[str, Any], state: WorkerState) -> dict[str, Any]:
        from dataclasses import asdict, replace

        from perfgate.engine.scenarios.train_step import recipe_of, tokenizer_of
        from perfgate.instruments.comparison import ComparePolicy, compare, for_history
        from perfgate.instruments.timing import Timer, TimerSettings, synchronizer, torch_threads
        from perfgate.subjects.training import (
            SlowDataset,
            StepRunner,
            data_loader,
            load_classifier,
            prefetch_prediction,
            samples_of,
            training_batches,
        )

        ref, device, size = payload["model"], payload["model"]["device"], payload["batch_size"]
        recipes = {arm: recipe_of(payload[key]) for arm, key in (("baseline", "baseline"), ("candidate", "technique"))}
        synchronize = synchronizer(device)
        with torch_threads(payload["threads"]) as threads:
            runners = {arm: StepRunner(load_classifier(ref["location"], device), recipe, device)
                       for arm, recipe in recipes.items()}  # fmt: skip
            batches = training_batches(tokenizer_of(ref["location"]), list(payload["eval_texts"]), size,
                                       payload["seq_len"], STEPS_PER_EPOCH, "cpu")  # fmt: skip
            dataset = SlowDataset(samples_of(batches), 0.0)

            def epoch(arm: str) -> list[float]:
                workers = runners[arm].recipe.dataloader_num_workers
                loader = data_loader(dataset, size, workers, pin_memory=device.startswith("cuda"))
                return [runners[arm].step({k: v.to(device) for k, v in batch.items()}) for batch in loader]

            losses = {arm: epoch(arm) for arm in runners}
            compute = []
            for batch in batches[: COMPUTE_STEPS + 1]:  # the first one a warm-up
                began = time.perf_counter()
                runners["baseline"].step({k: v.to(device) for k, v in batch.items()})
                synchronize()
                compute.append(time.perf_counter() - began)
            step_seconds = statistics.median(compute[1:])
            workers = recipes["candidate"].dataloader_num_workers
            startup = []
            for _ in range(STARTUP_EPOCHS):
                began = time.perf_counter()
                next(iter(data_loader(dataset, size, workers)))
                startup.append(time.perf_counter() - began)
            startup_seconds = statistics.median(startup)
            dataset.seconds_per_item = step_seconds / size
            began = time.perf_counter()
            for index in range(COST_FETCHES):
                dataset[index % len(dataset)]
            item_seconds = (time.perf_counter() - began) / COST_FETCHES
            policy = for_history(replace(ComparePolicy(), **payload["policy"]))  # long pairs: more budget for history
            comparison = compare(lambda: epoch("baseline"), lambda: epoch("candidate"),
                                 Timer(synchronize=synchronize, settings=TimerSettings(**EPOCH_TIMING)),
                                 payload["bound"], policy)  # fmt: skip
        speed = comparison.to_dict()
        samples = size * STEPS_PER_EPOCH
        speed["throughput_items_per_second"] = {
            arm: samples / comparison.latency(arm).p50 for arm in ("baseline", "candidate")
        }
        predicted = prefetch_prediction(step_seconds, item_seconds, size, STEPS_PER_EPOCH, workers, startup_seconds)
        differences = [abs(a - b) for a, b in zip(losses["baseline"], losses["candidate"], strict=True)]
        training = {
            "recipe": asdict(recipes["candidate"]),
            "batch_size": size,
            "seq_len": payload["seq_len"],
            "losses": losses,
            "max_loss_diff": max(differences),
            "samples_per_second": speed["throughput_items_per_second"],
            "data": {
                "workers": workers,
                "steps_per_epoch": STEPS_PER_EPOCH,
                "step_seconds": step_seconds,
                "item_seconds": item_seconds,
                "startup_seconds": startup_seconds,
                "predicted_speedup": predicted,
                "prefetch_efficiency": speed["estimate"]["speedup"] / predicted,
            },
        }
        return {"metrics": {"speed": speed, "training": training}, "threads": threads}
