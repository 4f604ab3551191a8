"""Planted techniques the perf suite measures to show its own measures can fail (see planted.py)."""

from __future__ import annotations

from perfgate import register_technique

register_technique("planted-fp32-copy-leak", "perf.planted:LeaksAnFp32Copy")
register_technique("planted-cuda-device-assert", "perf.planted:TriggersADeviceSideAssert")
register_technique("planted-offload-below-largest-layer", "perf.planted:OffloadBelowTheLargestLayer")
register_technique("planted-offload-unwritable-folder", "perf.planted:OffloadToAnUnwritableFolder")
