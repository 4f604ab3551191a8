"""Instruments and statistics: clocks and the interleaved A/B comparison (``timing``, ``comparison``,
``calibration``), memory and energy (``memory``, ``cgroup``, ``nvml``, ``energy``), output fidelity,
generation latency, op-by-op profiles (``profiling``), and the outcome vocabulary. A new way to measure
or to decide goes here.

Imports nothing of perfgate but ``perfgate.errors``: an instrument knows no case, model or report."""
