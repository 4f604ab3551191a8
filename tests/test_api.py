from __future__ import annotations

import subprocess
import sys

import perfgate

PUBLIC = {
    "CaseResult", "CaseSpec", "ComparePolicy", "Comparison", "ConfigError", "LoadedModel",
    "ModelNotFoundError", "ModelRegistry", "ModelSource", "Outcome", "PerfgateError", "Requirement",
    "ResultsFileError", "RunRecord", "Scenario", "SpeedEstimate", "Technique", "Thresholds",
    "ThresholdsError", "Timer", "TimerSettings", "UnknownModelError", "UnknownTechniqueError", "Variant",
    "Verdict", "compare", "estimate_speedup", "load_thresholds", "register_technique",
}  # fmt: skip


def test_the_public_api_is_pinned():
    assert set(perfgate.__all__) == PUBLIC
    assert all(hasattr(perfgate, name) for name in PUBLIC)


def test_loading_the_plugin_imports_no_heavy_library():
    heavy = "{'torch', 'transformers', 'onnxruntime', 'pynvml'}"
    code = f"import sys, perfgate.plugin; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
