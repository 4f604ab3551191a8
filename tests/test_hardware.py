from __future__ import annotations

import pytest

from perfgate.subjects.hardware import (
    CpuInfo,
    GpuInfo,
    Hardware,
    _gpu_device_nodes,
    cpu_class,
    parse_cpuinfo,
    visible_gpus_report,
)

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma f16c
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse sse2 avx avx2 fma f16c
"""
SAPPHIRE_RAPIDS = "processor : 0\nmodel name : Intel Xeon Platinum 8480+\nflags : avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16\n"
GRAVITON = "processor : 0\nCPU part : 0xd40\nFeatures : fp asimd sve\n"


def test_cpuinfo_gives_model_flags_and_cores():
    cpu = parse_cpuinfo(ZEN3)
    assert cpu.model == "AMD EPYC 7B13"
    assert cpu.logical_cores == 2
    assert {"avx2", "fma"} <= cpu.flags
    assert not cpu.int8_dot_product
    assert not cpu.bf16_native


@pytest.mark.parametrize(
    ("text", "machine", "expected"),
    [
        (ZEN3, "x86_64", "cpu-avx2"),
        (SAPPHIRE_RAPIDS, "x86_64", "cpu-amx"),
        ("flags : avx2 avx512f avx512_vnni\n", "x86_64", "cpu-avx512-vnni"),
        ("flags : avx2 avx512f avx512_vnni avx512_bf16\n", "x86_64", "cpu-avx512-bf16"),
        ("flags : avx2 avx512f\n", "x86_64", "cpu-avx512"),
        ("flags : avx2 avx_vnni\n", "x86_64", "cpu-avx2-vnni"),
        ("flags : sse2\n", "x86_64", "cpu-generic"),
        (GRAVITON, "aarch64", "cpu-arm64-sve"),
    ],
)
def test_hardware_class_from_sample_cpuinfo(text, machine, expected):
    assert cpu_class(parse_cpuinfo(text, machine)) == expected


def test_gpu_class_names_the_compute_capability_and_cpu_cases_keep_the_cpu_class():
    h100 = GpuInfo("NVIDIA H100 80GB HBM3", (9, 0), 80 * 2**30, driver="580.1", cuda="12.8")
    hardware = Hardware(cpu=parse_cpuinfo(ZEN3), gpus=(h100,))
    assert hardware.hardware_class("cuda") == "gpu-sm90"
    assert hardware.hardware_class("cuda:0") == "gpu-sm90"
    assert hardware.hardware_class("cpu") == "cpu-avx2"
    assert hardware.has_cuda
    assert hardware.fingerprint()["gpus"][0]["compute_capability"] == (9, 0)


def test_the_fingerprint_says_which_low_precision_math_the_cpu_has_natively():
    cpu = Hardware(cpu=parse_cpuinfo(SAPPHIRE_RAPIDS)).fingerprint()["cpu"]
    assert cpu["bf16_native"] is True
    assert cpu["int8_dot_product"] is True
    assert cpu["fp16_native"] is False  # AMX-FP16 and AVX512-FP16 are absent from this sample
    assert "amx_int8" in cpu["flags"]


def test_without_a_gpu_cuda_cases_have_no_class_and_an_override_wins():
    cpu = CpuInfo("x", frozenset({"avx2"}), 2)
    assert Hardware(cpu=cpu).hardware_class("cuda") == "gpu-none"
    assert Hardware(cpu=cpu, class_override="cpu-ci-pool").hardware_class("cpu") == "cpu-ci-pool"


def test_known_classes_are_the_families_the_detected_ones_declared_ones_and_any_gpu_sm():
    from perfgate.subjects.hardware import DETECTED_CLASSES, FAMILIES, known_class

    known = [*FAMILIES, *DETECTED_CLASSES, "cpu-epyc-pool"]
    for name in (
        "cpu",
        "default",
        "cpu-avx512-bf16",
        "cpu-amx",
        "gpu-sm90",
        "gpu-sm120",
        "cpu-epyc-pool",
        "cpu-bf16-native",
        "gpu-fp16-emulated",
    ):
        assert known_class(name, known), name
    for typo in ("cpu-avx512bf16", "gpu-sm9", "GPU-SM90", "cpu-avx-512", "cpu-bf16-fast"):
        assert not known_class(typo, known), typo


def test_native_math_follows_the_flags_on_cpu_and_the_compute_capability_on_gpu():
    from perfgate.subjects.hardware import CpuInfo, GpuInfo, Hardware

    zen4 = CpuInfo("zen4", frozenset({"avx512f", "avx512_bf16"}), 2)
    spr = CpuInfo("spr", frozenset({"avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16"}), 2)
    gpus = (GpuInfo("T4", (7, 5), 16 * 2**30), GpuInfo("H200", (9, 0), 141 * 2**30))
    assert Hardware(zen4).capability("bf16") == "cpu-bf16-native"
    assert Hardware(zen4).capability("fp16") == "cpu-fp16-emulated"
    assert Hardware(spr).capability("fp16") == "cpu-fp16-native"
    assert Hardware(CpuInfo("zen3", frozenset({"avx2"}), 2)).capability("bf16") == "cpu-bf16-emulated"
    assert Hardware(zen4, gpus).capability("bf16", "cuda:0") == "gpu-bf16-emulated"  # Turing: fp16 tensor cores only
    assert Hardware(zen4, gpus).capability("fp16", "cuda:0") == "gpu-fp16-native"
    assert Hardware(zen4, gpus).capability("bf16", "cuda:1") == "gpu-bf16-native"


def test_the_memory_settings_name_the_huge_page_mode_and_torch_s_request(monkeypatch):
    from perfgate.subjects.hardware import memory_settings

    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    settings = memory_settings()
    assert settings["THP_MEM_ALLOC_ENABLE"] == "1"
    assert settings["transparent_hugepage"] in (None, "always", "madvise", "never")


def test_the_gpu_report_lists_what_the_plugin_will_run_on():
    h200 = GpuInfo(name="NVIDIA H200", compute_capability=(9, 0), total_memory_bytes=141 * 2**30)
    found, message = visible_gpus_report([h200], torch_sees=1)
    assert found
    assert message == "cuda:0: NVIDIA H200 (gpu-sm90, 141 GiB)"


def test_a_detection_that_disagrees_with_torch_fails_loudly():
    found, message = visible_gpus_report([], torch_sees=2)
    assert not found
    assert "torch sees 2 CUDA device(s) but perfgate detected 0" in message
    h200 = GpuInfo(name="NVIDIA H200", compute_capability=(9, 0), total_memory_bytes=141 * 2**30)
    assert not visible_gpus_report([h200], torch_sees=2)[0]
    assert visible_gpus_report([], torch_sees=0) == (
        False,
        "no CUDA device: torch.cuda.is_available() is False here (no driver, or a CPU build of torch)",
    )


def test_gpu_device_nodes_include_wsl(tmp_path):
    assert not _gpu_device_nodes(tmp_path)
    (tmp_path / "dxg").touch()
    assert _gpu_device_nodes(tmp_path)
    (tmp_path / "dxg").unlink()
    (tmp_path / "nvidia0").touch()
    assert _gpu_device_nodes(tmp_path)
