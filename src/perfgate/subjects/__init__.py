"""What is measured: models (``model``), the machine (``hardware``), techniques (the ``technique``
contract, ``techniques/`` and their ``catalogue``), training steps and distributed recipes, the
reference quantization, and Python environments for library upgrades. A new technique goes in
``techniques/``; a new kind of model or training recipe here.

Imports ``instruments`` and ``errors`` only."""
