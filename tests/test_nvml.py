"""NVML by the GPU's UUID, on a fake NVML: the host's numbering is not CUDA's, and a container hides PIDs."""

from __future__ import annotations

from types import SimpleNamespace

from perfgate.instruments.nvml import clocks_and_power, nvml_uuid, process_device_memory, throttle_reasons


class FakeNvml:
    """Two GPUs in the host's PCI order; each knows its processes (host PIDs) and its used memory."""

    NVML_CLOCK_SM, NVML_CLOCK_MEM = 0, 2
    nvmlClocksThrottleReasonGpuIdle = 0x1
    nvmlClocksThrottleReasonSwPowerCap = 0x4
    nvmlClocksThrottleReasonHwSlowdown = 0x8
    nvmlClocksThrottleReasonAll = 0xFF
    nvmlClocksThrottleReasonNone = 0x0

    def __init__(self) -> None:
        self.gpus = {
            "GPU-aaaa": SimpleNamespace(processes=[SimpleNamespace(pid=4242, usedGpuMemory=7 * 2**30)], used=9 * 2**30),
            "GPU-bbbb": SimpleNamespace(processes=[SimpleNamespace(pid=99, usedGpuMemory=2**30)], used=3 * 2**30),
        }

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return self.gpus[uuid]

    def nvmlDeviceGetHandleByIndex(self, index):  # what must not be asked: the host's order
        raise AssertionError("NVML asked by index")

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return handle.processes

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=handle.used)

    def nvmlDeviceGetClockInfo(self, handle, clock):
        return {0: 1980, 2: 3201}[clock]

    def nvmlDeviceGetMaxClockInfo(self, handle, clock):
        return 1980

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle):
        return 0x4 | 0x8


def test_torch_uuids_get_nvml_s_prefix():
    assert nvml_uuid("6f1b2c3d-0000-1111-2222-333344445555") == "GPU-6f1b2c3d-0000-1111-2222-333344445555"
    assert nvml_uuid("GPU-6f1b") == "GPU-6f1b"
    assert nvml_uuid("MIG-1234") == "MIG-1234"


def test_a_process_s_device_memory_is_read_on_its_own_gpu_by_uuid():
    nvml = FakeNvml()
    assert process_device_memory(nvml, "GPU-bbbb", pid=99) == {"bytes": 2**30, "by": "process", "uuid": "GPU-bbbb"}
    assert process_device_memory(nvml, "GPU-aaaa", pid=4242)["bytes"] == 7 * 2**30


def test_in_a_container_the_device_s_used_memory_stands_in_and_says_so():
    memory = process_device_memory(FakeNvml(), "GPU-bbbb", pid=12)  # the container's PID 12 is host PID 99
    assert memory["bytes"] == 3 * 2**30
    assert memory["by"].startswith("device used")
    assert "none with PID 12" in memory["by"]


def test_clocks_power_and_throttle_reasons_are_named():
    figures = clocks_and_power(FakeNvml(), "GPU-aaaa")
    assert figures["sm_clock_mhz"] == 1980
    assert figures["memory_clock_mhz"] == 3201
    assert figures["power_limit_w"] == 700.0
    assert figures["throttle_reasons"] == ["HwSlowdown", "SwPowerCap"]
    assert throttle_reasons(FakeNvml(), 0) == []


def test_a_field_the_driver_does_not_report_is_said_and_the_rest_kept():
    nvml = FakeNvml()

    def unsupported(handle):
        raise RuntimeError("NVMLError_NotSupported")

    nvml.nvmlDeviceGetEnforcedPowerLimit = unsupported
    figures = clocks_and_power(nvml, "GPU-aaaa")
    assert figures["power_limit_w"] == "unavailable: RuntimeError"
    assert figures["sm_clock_mhz"] == 1980
