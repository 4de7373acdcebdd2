"""Write bytecode for the modules the service imports, and only those (run in the image build).

The runtime image keeps no ``__pycache__`` from the install (about 200 MB for every module of
every dependency), but without bytecode each process would compile its imports from source at
start-up, and as a non-root user it could not keep the result. So this imports every module
that ``lookalike``'s code names (at the top of a file or inside a function), and a few that
uvicorn picks at run time, letting Python write their bytecode; the rest of each dependency
(never imported by the service) stays source only.
"""

from __future__ import annotations

import ast
import compileall
import importlib
import sys
import warnings
from pathlib import Path

# Imported by name at run time rather than by an import statement in lookalike's code.
RUNTIME_MODULES = (
    "uvicorn.loops.uvloop",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.websockets_impl",
    "uvicorn.lifespan.on",
    "uvicorn.supervisors.multiprocess",
    "psycopg",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "matplotlib.backends.backend_agg",
)


def imported_names(package: Path) -> set[str]:
    """Every absolute module name imported anywhere under ``package``."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                # `from package import module` names a submodule as often as an attribute.
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def main() -> int:
    import lookalike

    package = Path(lookalike.__file__).parent
    # The project's own files, migrations included (alembic loads those by path).
    compileall.compile_dir(package, quiet=1)
    wanted = sorted(imported_names(package) | set(RUNTIME_MODULES))
    failed = []
    # Importing is all that is wanted here; deprecation notices are for whoever runs the code.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in wanted:
            try:
                importlib.import_module(name)
            except Exception:  # an extra that is not installed (torch, ...), or an attribute
                failed.append(name)
    print(
        f"precompile: {len(wanted) - len(failed)} modules imported; {len(failed)} other names"
        " (attributes, or extras not installed)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
