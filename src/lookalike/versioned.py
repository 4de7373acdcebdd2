"""Versioned artifact directories: ``<root>/<prefix>NNNN``, each written whole or not at all.

Face/image models (``models/mNNNN``, ``lookalike.artifacts``) and name generators
(``names/nNNNN``, ``lookalike.names.store``) are written the same way: the files go into a
temporary directory beside the versions, its permissions are opened to every user (a web
server running as another user must read it), the files are flushed to disk, and the next
free version number is claimed by renaming the directory into place. The rename fails when
another writer took that number first, and the next number is tried; a reader therefore sees
a whole version or none, and a killed writer leaves only a ``.building-*`` directory.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

TEMP_PREFIX = ".building-"
DIR_MODE = 0o755  # mkdtemp makes 0700
FILE_MODE = 0o644


def version_pattern(prefix: str) -> re.Pattern[str]:
    """Version names: ``prefix`` and at least four digits (``m0001``, ``n0012``)."""
    return re.compile(rf"{re.escape(prefix)}\d{{4,}}")


class VersionedDirs:
    """The version directories of one kind of artifact under ``root``."""

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = Path(root)
        self.prefix = prefix
        self.pattern = version_pattern(prefix)

    def is_version(self, name: str) -> bool:
        return self.pattern.fullmatch(name) is not None

    def versions(self) -> list[str]:
        """Every version directory, in numeric order (``m10000`` after ``m9999``)."""
        if not self.root.exists():
            return []
        found = [p.name for p in self.root.iterdir() if p.is_dir() and self.is_version(p.name)]
        return sorted(found, key=lambda n: int(n[len(self.prefix) :]))

    def next_version(self, reserved: Collection[str] = ()) -> str:
        """The number after every existing directory and every ``reserved`` name."""
        taken = [*self.versions(), *(v for v in reserved if self.is_version(v))]
        number = max((int(v[len(self.prefix) :]) for v in taken), default=0) + 1
        return f"{self.prefix}{number:04d}"

    def write(
        self,
        files: Mapping[str, bytes],
        manifest: Callable[[str], Mapping[str, bytes]],
        reserved: Collection[str] = (),
    ) -> str:
        """Write a new version atomically and return its name. ``files`` do not depend on the
        version; ``manifest(version)`` gives the files that name it (``model.json``), called
        again when another writer claimed that version first."""
        with self._staged(files) as tmp:
            while True:  # claim the next free version name; rename fails if it exists
                version = self.next_version(reserved)
                for name, data in manifest(version).items():
                    _write_file(tmp / name, data)
                if self._claim(tmp, version):
                    return version

    def place(self, version: str, files: Mapping[str, bytes]) -> bool:
        """Write version ``version`` (a copy of one made elsewhere, e.g. fetched from the
        object store) whole, as :meth:`write` does; False when it exists already (another
        process placed it first: the same files)."""
        if not self.is_version(version):
            raise ValueError(f"not a version name: {version!r}")
        with self._staged(files) as tmp:
            return self._claim(tmp, version)

    @contextmanager
    def _staged(self, files: Mapping[str, bytes]) -> Iterator[Path]:
        """A temporary directory beside the versions holding ``files``, removed on exit
        unless it was renamed into place."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=TEMP_PREFIX))
        try:
            os.chmod(tmp, DIR_MODE)
            for name, data in files.items():
                _write_file(tmp / name, data)
            yield tmp
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def _claim(self, tmp: Path, version: str) -> bool:
        """Rename ``tmp`` to ``version``; False when another writer took that name first."""
        try:
            os.rename(tmp, self.root / version)
        except OSError:
            if not (self.root / version).exists():
                raise
            return False
        return True


def _write_file(path: Path, data: bytes) -> None:
    """Write ``data`` readable by every user and flushed to disk (it is renamed into place
    with its directory: a crash must not leave a whole directory of half-written files)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
