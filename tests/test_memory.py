"""Memory figures from /proc: the split of resident memory, the peak reset, and the parent's sampler."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from perfgate.instruments.memory import (
    MemorySampler,
    is_cuda_error,
    is_out_of_memory,
    mapped_file_bytes,
    memory_ratio,
    process_memory,
    reset_peak,
)

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc, which only Linux has")


@linux_only
def test_resident_memory_splits_into_anonymous_file_backed_and_shared():
    figures = process_memory()
    assert figures["rss"] == pytest.approx(figures["anon"] + figures["file"] + figures["shmem"], rel=0.02)
    assert figures["peak_rss"] >= figures["rss"]


@linux_only
def test_resetting_the_peak_forgets_an_earlier_allocation():
    code = (
        "from perfgate.instruments.memory import process_memory, reset_peak\n"
        "block = bytearray(200 * 2**20); del block\n"
        "before = process_memory()['peak_rss']\n"
        "assert reset_peak()\n"
        "print(before - process_memory()['peak_rss'])\n"
    )
    dropped = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert dropped > 150 * 2**20


@linux_only
def test_the_sampler_sees_another_process_grow_and_reports_the_split_at_its_peak():
    code = "import time\nblock = bytearray(b'x' * (100 * 2**20))\ntime.sleep(1.0)\n"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        with MemorySampler(child.pid, interval=0.01) as sampler:
            child.wait(30)
    finally:
        child.kill()
    peak = sampler.peak_in(0, time.monotonic())
    assert peak["samples"] > 10
    assert peak["at_peak"]["anon"] > 100 * 2**20
    assert peak["max"]["rss"] >= peak["at_peak"]["rss"]


def test_a_window_without_samples_says_so_instead_of_inventing_a_peak():
    sampler = MemorySampler(pid=0, interval=0.005)
    sampler.samples = [(1.0, {"rss": 10, "anon": 5, "file": 5, "shmem": 0})]
    assert sampler.peak_in(2.0, 3.0) == {"samples": 0, "interval_seconds": 0.005}
    assert sampler.peak_in(0.5, 1.5)["at_peak"]["rss"] == 10


@pytest.mark.parametrize(
    ("error", "oom", "cuda"),
    [
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"), True, False),
        (MemoryError(), True, False),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), False, True),
        (RuntimeError("shape mismatch"), False, False),
    ],
)
def test_errors_are_told_apart_by_what_they_mean_for_the_worker(error, oom, cuda):
    assert is_out_of_memory(error) is oom
    assert is_cuda_error(error) is cuda


def test_reset_peak_reports_when_the_kernel_refuses(monkeypatch):
    def refuse(self, text):
        raise PermissionError("clear_refs")

    monkeypatch.setattr("pathlib.Path.write_text", refuse)
    assert reset_peak() is False


@linux_only
def test_only_the_resident_pages_of_files_under_the_roots_count(tmp_path):
    import mmap

    weights = tmp_path / "model" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"w" * (8 * 2**20))
    with weights.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        assert mapped_file_bytes([str(weights.parent)]) == 0  # mapped, never read
        touched = sum(mapped[offset] for offset in range(0, 4 * 2**20, 4096))
        assert touched
        resident = mapped_file_bytes([str(weights.parent)])
        assert 4 * 2**20 <= resident <= 5 * 2**20
        assert mapped_file_bytes([str(tmp_path / "elsewhere")]) == 0


def test_cuda_library_allocation_failures_count_as_out_of_memory():
    error = RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`")
    assert is_out_of_memory(error)
    assert is_out_of_memory(RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"))
    assert not is_out_of_memory(RuntimeError("CUDA error: CUBLAS_STATUS_EXECUTION_FAILED"))


def test_a_memory_check_judges_device_memory_on_cuda_and_keeps_the_host_ratio():
    baseline = {"attributable": 400, "cuda_peak_allocated": 1000}
    candidate = {"attributable": 600, "cuda_peak_allocated": 500}
    on_gpu = memory_ratio(baseline, candidate, "attributable", "cuda:1")
    assert on_gpu == {"ratio": 0.5, "judged": "cuda_peak_allocated", "host_ratio": 1.5}
    assert memory_ratio(baseline, candidate, "attributable", "cpu") == {"ratio": 1.5, "judged": "attributable"}
    assert memory_ratio({"attributable": 400}, candidate, "attributable", "cuda")["ratio"] is None
