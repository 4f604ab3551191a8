"""The engine that runs a case: its spec and record, the scenarios that conduct it (``scenarios/``,
their contract in ``scenarios/contract.py``), the metrics that judge it (``metrics/``) and ``judge``,
the worker processes and their ``launcher``, GPU placement, and the options (``config``). A new
scenario goes in ``scenarios/``, a new metric in ``metrics/``.

Imports ``verdicts``, ``subjects``, ``instruments`` and ``errors``."""
