"""The installed ``lookalike`` console script, run as a user runs it (no tests here)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("lookalike")


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The real console script, as a user runs it (wide terminal so lines do not wrap)."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
        cwd=tempfile.gettempdir(),  # no stray .env from the repository
        check=False,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], code: str) -> None:
    """Exit status 2 with ``code`` on screen, never a traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert code in out, out
    assert "Traceback" not in out, out
