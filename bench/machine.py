"""Machine facts shared by the benchmark scripts (run as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def pin_cores(cores: int) -> list[int]:
    """Restrict this process (and what it starts) to ``cores`` CPUs, before any thread pool
    exists."""
    available = sorted(os.sched_getaffinity(0))
    chosen = available[:cores]
    if len(chosen) < len(available):
        os.sched_setaffinity(0, chosen)
    return chosen


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pkg(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"
