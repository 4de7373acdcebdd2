"""The engine never imports the HTTP edge, the pages or the CLI; serving a prediction never
imports the training pipeline; the layers inside the engine point one way: ``config`` is
below every feature package, ``vision`` below ``data``, ``data`` below ``training``, and the
artifact layer (loading a saved model) below training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lookalike

ROOT = Path(lookalike.__file__).parent
# The edge: what turns the engine into a service or a command line.
EDGE = ("lookalike.api", "lookalike.cli", "lookalike.admin_cli", "lookalike.names.cli")
EDGE += ("lookalike.server", "lookalike.demo", "lookalike.web")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every ``lookalike`` module ``path`` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.startswith("lookalike")}


def is_edge(name: str) -> bool:
    return any(name == e or name.startswith(e + ".") for e in EDGE)


def test_the_engine_never_imports_the_edge() -> None:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    # The package root is the public API: it names the engine and the edge alike, lazily
    # (PEP 562 __getattr__), so importing any module never loads the edge through it.
    engine = {n: p for n, p in modules.items() if not is_edge(n) and n != "lookalike"}
    assert "lookalike.inference" in engine and "lookalike.api.app" not in engine
    wrong = {name: sorted(i for i in imports(path) if is_edge(i)) for name, path in engine.items()}
    assert {k: v for k, v in wrong.items() if v} == {}


SERVING = """
import sys
import lookalike.inference, lookalike.visits
print(" ".join(sorted(sys.modules)))
"""


def test_serving_never_imports_the_training_pipeline() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", SERVING], capture_output=True, text=True, check=True
    ).stdout.split()
    training = {"lookalike.training.train", "lookalike.training.compare"}
    training |= {"lookalike.training.evaluate", "lookalike.data.importers"}
    assert not training & set(loaded)
    assert not {"sklearn", "torch", "matplotlib"} & set(loaded)
    assert not [m for m in loaded if is_edge(m)]  # the package root loads nothing eagerly
    # Nothing of the training package at all: a saved model's heads and resemblance scoring
    # are lookalike.scoring's.
    assert not {m for m in loaded if m.startswith("lookalike.training")}


# --- layers inside the engine (what a module reaches through its imports, transitively) -------

MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def reach(start: str) -> set[str]:
    """Every ``lookalike`` module ``start`` imports, directly or through other modules."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += [m for m in imports(MODULES[name]) if m in MODULES and m not in seen]
    return seen - {start}


def under(names: set[str], *packages: str) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in packages))


def package(prefix: str) -> list[str]:
    found = [n for n in MODULES if n == prefix or n.startswith(prefix + ".")]
    assert found, prefix
    return found


# What config may lean on: plain modules that know no feature.
FOUNDATION = {"lookalike.datadir", "lookalike.zones", "lookalike.errors", "lookalike.fsutil"}


def test_config_imports_no_feature_package() -> None:
    assert reach("lookalike.config") <= FOUNDATION


def test_vision_never_imports_data_training_the_registry_or_the_edge() -> None:
    wrong = {
        name: under(reach(name), "lookalike.data", "lookalike.training", "lookalike.registry")
        + [m for m in reach(name) if is_edge(m)]
        for name in package("lookalike.vision")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_data_never_imports_training_or_the_edge() -> None:
    wrong = {
        name: under(reach(name), "lookalike.training") + [m for m in reach(name) if is_edge(m)]
        for name in package("lookalike.data")
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_loading_a_model_never_imports_training() -> None:
    """The artifact layer (and the registry over it) read saved models with the numpy
    scoring code; fitting lives in training, which depends on them, not the reverse."""
    for name in ("lookalike.artifacts", "lookalike.registry", *package("lookalike.scoring")):
        assert under(reach(name), "lookalike.training") == [], name
