"""Hypothesis profiles, in one place.

    ci       fast and deterministic (derandomized), no example database written anywhere: every CI run
    nightly  many more examples, random, database under .cache/hypothesis (git-ignored)
    debug    few examples, verbose

Pick one with ``PERFGATE_HYPOTHESIS_PROFILE=nightly`` or hypothesis's own ``--hypothesis-profile``
(the option wins). The default is ``ci``.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Verbosity, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILE_ENV = "PERFGATE_HYPOTHESIS_PROFILE"

settings.register_profile(
    "ci",
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,  # a 2-core CI box stalls now and then; timing is not what these tests check
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly",
    max_examples=2000,
    deadline=None,
    database=DirectoryBasedExampleDatabase(str(Path(__file__).parents[1] / ".cache" / "hypothesis")),
)
settings.register_profile("debug", max_examples=20, deadline=None, database=None, verbosity=Verbosity.verbose)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))
