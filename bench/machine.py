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


def load() -> str:
    """The load average: other work on the machine skews every timing."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "?"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni")
    return " ".join(f for f in wanted if f" {f} " in text or f" {f}\n" in text) or "?"


def print_machine(cpus: list[int], packages: list[str]) -> None:
    """CPU, pinning, load and the versions of ``packages`` (distribution names)."""
    print(f"machine : {cpu_model()}, {os.cpu_count()} CPUs, pinned to {len(cpus)}: {cpus}")
    print(f"          flags: {cpu_flags()}; load average {load()}")
    versions = ", ".join(f"{name} {pkg(name)}" for name in packages)
    print(f"versions: python {platform.python_version()}, {versions}")
