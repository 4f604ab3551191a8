"""scripts/bootstrap.sh: the pin set is chosen by name, and a name with no file is refused up front."""

from __future__ import annotations

import os
import subprocess

from tests.user_project import ROOT


def test_an_unknown_pin_set_is_named_with_the_choices():
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "bootstrap.sh")], env={**os.environ, "PINS": "no-such-pins"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "requirements/no-such-pins.txt does not exist (use cpu or transformers5)" in result.stderr


def test_every_pin_set_pins_torch_first():
    """Anything installed before a pinned torch may pull an unpinned one: several GB of CUDA wheels."""
    for name in ("cpu", "transformers5"):
        text = (ROOT / "requirements" / f"{name}.txt").read_text()
        requirements = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        assert requirements[0] == "torch==2.13.0", name
