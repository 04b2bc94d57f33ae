"""Hypothesis settings for the property tests: deterministic, bounded, and nothing written into
the repository (no example database; Hypothesis's own caches go to the temp directory), so CI
and every developer get the same examples."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "aih-cds-hypothesis")
settings.register_profile(
    "aih-cds",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=150,
    print_blob=False,
)
settings.load_profile("aih-cds")
