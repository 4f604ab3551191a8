"""GPU placement on a multi-GPU host, tested on CPU: which GPU each xdist worker takes, what its worker
processes see, and which lock they share."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from perfgate.engine.launcher import Launcher, WorkerProcess
from perfgate.engine.placement import GpuPlacement, choose_gpu, parse_gpu_list, visible_gpu_ids
from perfgate.errors import ConfigError


def test_visible_gpus_follow_cuda_visible_devices_when_it_is_set():
    assert visible_gpu_ids({}, 4) == ["0", "1", "2", "3"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "2,3"}, 2) == ["2", "3"]
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "GPU-8f3a, GPU-77c1"}, 2) == ["GPU-8f3a", "GPU-77c1"]
    assert visible_gpu_ids({}, 0) == []


def test_each_xdist_worker_takes_the_next_gpu_in_turn():
    visible = ["0", "1", "2", "3"]
    chosen = [choose_gpu(f"gw{k}", visible, None) for k in range(6)]
    assert [g.visible_id for g in chosen if g] == ["0", "1", "2", "3", "0", "1"]
    assert choose_gpu(None, visible, None) == GpuPlacement(position=0, visible_id="0")
    assert choose_gpu("gw1", visible, ["3", "1"]) == GpuPlacement(position=1, visible_id="1")
    assert choose_gpu("gw0", [], None) is None


def test_a_gpu_that_is_not_visible_is_refused_with_the_visible_ones():
    with pytest.raises(
        ConfigError, match=r"--perfgate-gpus names 7, which this process does not see \(visible: 0, 1\)"
    ):
        choose_gpu("gw0", ["0", "1"], ["1", "7"])
    with pytest.raises(ValueError, match="name at least one GPU"):
        parse_gpu_list(" , ")


def worker_environment(worker: WorkerProcess) -> dict[str, str]:
    raw = Path(f"/proc/{worker.pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().partition("=")[::2] for entry in raw if entry)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads a worker's environment from /proc")
def test_a_cuda_worker_sees_only_its_gpu_and_a_cpu_worker_is_left_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    launcher = Launcher([os.getcwd()], tmp_path, gpu=GpuPlacement(position=1, visible_id="1"))
    cuda = WorkerProcess(launcher.sys_path, 60, 1.0, launcher.worker_environment("cuda"))
    cpu = WorkerProcess(launcher.sys_path, 60, 1.0, launcher.worker_environment("cpu"))
    try:
        assert worker_environment(cuda)["CUDA_VISIBLE_DEVICES"] == "1"
        assert worker_environment(cpu)["CUDA_VISIBLE_DEVICES"] == "0,1"
    finally:
        cuda.close()
        cpu.close()


def test_processes_placed_on_one_gpu_share_its_lock_and_others_do_not(tmp_path):
    on_one = [Launcher([], tmp_path, gpu=GpuPlacement(k, "1")) for k in (0, 1)]
    on_zero = Launcher([], tmp_path, gpu=GpuPlacement(0, "0"))
    assert on_one[0].lock_path("cuda") == on_one[1].lock_path("cuda") == tmp_path / "cuda-1.lock"
    assert on_zero.lock_path("cuda") == tmp_path / "cuda-0.lock"
    assert on_zero.lock_path("cpu") == on_one[0].lock_path("cpu") == tmp_path / "cpu.lock"

    held: list[tuple[str, float, float]] = []

    def hold(launcher: Launcher, name: str) -> None:
        with launcher.device_lock("cuda"):
            start = time.monotonic()
            time.sleep(0.3)
            held.append((name, start, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(launcher, name))
               for launcher, name in ((on_one[0], "a"), (on_one[1], "b"), (on_zero, "c"))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = {name: (start, end) for name, start, end in held}
    (a_start, a_end), (b_start, b_end) = spans["a"], spans["b"]
    assert a_end <= b_start or b_end <= a_start, "two measurements on GPU 1 at once"
    c_start, c_end = spans["c"]
    overlapped = c_start < max(a_end, b_end) and c_end > min(a_start, b_start)
    assert overlapped, "GPU 0 waited for GPU 1's lock"


def test_a_device_named_cuda_n_becomes_the_only_gpu_its_workers_see():
    from perfgate.engine.placement import place_device

    assert place_device("cpu", ["0", "1"]) == ("cpu", None)
    assert place_device("cuda:1", ["0", "1"]) == ("cuda", GpuPlacement(position=1, visible_id="1"))
    assert place_device("cuda", ["GPU-a", "GPU-b"]) == ("cuda", GpuPlacement(position=0, visible_id="GPU-a"))
    with pytest.raises(ConfigError, match="sees 2 GPU"):
        place_device("cuda:2", ["0", "1"])


def test_an_upgrade_gate_s_workers_and_lock_are_its_gpu_s(tmp_path):
    import sys

    from perfgate.answers.upgrade import GateRun

    run = GateRun(rootdir=tmp_path, workdir=tmp_path, lock_dir=tmp_path / "locks", eval_texts=["a"],
                  timed_texts=["a"], labelled=None, device="cuda", gpu=GpuPlacement(1, "GPU-b"))  # fmt: skip
    launcher = run.launcher(sys.executable)
    assert launcher.worker_environment("cuda") == {"CUDA_VISIBLE_DEVICES": "GPU-b"}
    assert launcher.lock_path("cuda").name == "cuda-GPU-b.lock"


def test_capability_and_class_are_read_from_the_placed_gpu_not_the_first():
    from perfgate.engine.spec import CaseSpec
    from perfgate.plugin.machine import MachineView
    from perfgate.subjects.catalogue import get_technique
    from perfgate.subjects.hardware import CpuInfo, GpuInfo, Hardware
    from perfgate.subjects.technique import compute_capability_reason

    t4, h200 = GpuInfo("T4", (7, 5), 16 * 2**30), GpuInfo("H200", (9, 0), 141 * 2**30)
    machine = MachineView.__new__(MachineView)  # only the placement-reading methods: no pytest config
    machine.__dict__.update(
        hardware=Hardware(cpu=CpuInfo("cpu", frozenset(), 2), gpus=(t4, h200)), gpu=GpuPlacement(1, "1")
    )
    assert machine.placed("cuda") == "cuda:1"
    assert machine.capability(CaseSpec("m", "bf16-cast", device="cuda")) == "gpu-bf16-native"
    assert machine.hardware.capability("bf16", "cuda") == "gpu-bf16-emulated"  # what reading gpus[0] gave
    float8 = get_technique("torchao-float8-dynamic")
    assert compute_capability_reason(float8, machine.hardware.gpu(machine.placed("cuda"))) is None
    assert "needs compute capability 8.9+; T4 has 7.5" in compute_capability_reason(float8, t4)
    assert get_technique("bf16-cast+torchao-float8-dynamic").min_compute_capability == (8, 9)
