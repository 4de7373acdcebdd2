"""The engine never imports the HTTP edge, the pages or the CLI; serving a prediction never
imports the training pipeline."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import lookalike

ROOT = Path(lookalike.__file__).parent
# The edge: what turns the engine into a service or a command line.
EDGE = ("lookalike.api", "lookalike.cli", "lookalike.admin_cli", "lookalike.names.cli")
EDGE += ("lookalike.server", "lookalike.demo")


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
    engine = {name: path for name, path in modules.items() if not is_edge(name)}
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
