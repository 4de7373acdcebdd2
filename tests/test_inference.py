"""The Predictor on real ORL faces with the real ``face`` backbone: known people are named,
strangers get their lookalikes, bursts of frames, several faces, model switching."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.training import KNOWN, TINY, FaceModel, copy_home

from lookalike.artifacts import load_model, models_dir
from lookalike.config import Settings
from lookalike.demo_data import NONFACE_NAMES
from lookalike.errors import InvalidImage, InvalidInput, NoFaceFound
from lookalike.inference import Prediction, Predictor
from lookalike.registry import Registry
from lookalike.training.train import train
from lookalike.vision.images import DecodedImage, read_image

Orl = dict[str, list[Path]]
STRANGERS = [f"s{i}" for i in range(30, 40)]  # never imported


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_known_person_held_out_photo(face_model: FaceModel, orl: Orl) -> None:
    settings, report, predictor = face_model
    photo = orl["s3"][9]  # photo 10 was never imported
    prediction = predictor.predict(read_image(photo, settings))
    assert isinstance(prediction, Prediction)
    assert prediction.label == "s3" == prediction.best_label
    assert not prediction.no_strong_match
    assert prediction.match_score >= prediction.threshold == report.threshold
    assert prediction.model_version == "m0001"

    labels = [label for label, _ in prediction.probabilities]
    assert sorted(labels) == sorted(KNOWN)  # every class, once; the too-small one is not a class
    assert TINY not in labels
    probs = [p for _, p in prediction.probabilities]
    assert probs == sorted(probs, reverse=True)
    assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert prediction.probabilities[0] == ("s3", prediction.probability)

    assert len(prediction.nearest) == settings.nearest_k
    sims = [n.similarity for n in prediction.nearest]
    assert sims == sorted(sims, reverse=True)
    assert prediction.nearest[0].label == "s3"
    for n in prediction.nearest:
        assert Path(n.path).is_file()
        assert Path(n.path).name.startswith(n.sha256)
        assert -1.0 <= n.similarity <= 1.0

    assert len(prediction.faces) == 1 and prediction.face_index == 0
    x, y, w, h = prediction.faces[0].box
    assert x >= 0 and y >= 0 and w > 20 and h > 20 and x + w <= 92 + 5 and y + h <= 112 + 5
    assert prediction.frames_used == 1 and prediction.skipped == []

    answer = prediction.to_dict()
    assert answer["label"] == "s3"
    assert answer["faces_found"] == 1
    assert answer["face_box"] == [round(v, 1) for v in prediction.faces[0].box]
    assert [p["label"] for p in answer["probabilities"]] == labels


def test_known_people_are_matched(face_model: FaceModel, orl: Orl) -> None:
    settings, _, predictor = face_model
    right = [
        predictor.predict(read_image(orl[person][8], settings)).label == person for person in KNOWN
    ]
    assert sum(right) / len(right) >= 0.9, right


def test_strangers_are_told_who_they_look_like(face_model: FaceModel, orl: Orl) -> None:
    settings, _, predictor = face_model
    answers = [predictor.predict(read_image(orl[person][0], settings)) for person in STRANGERS]
    lookalikes = [a.kind == "lookalike" for a in answers]
    assert sum(lookalikes) / len(lookalikes) >= 0.9, [(a.names, a.match_score) for a in answers]
    for a in answers:
        # Not "this is X" (no identity), but always a named lookalike from the gallery.
        assert (a.label is None) == a.no_strong_match == (a.kind == "lookalike")
        assert a.best_label in KNOWN and a.best_label == a.names[0]
        assert (a.match_score < a.threshold) == a.no_strong_match


def test_burst_of_frames_skips_the_faceless_one(
    face_model: FaceModel, orl: Orl, nonfaces: dict[str, np.ndarray]
) -> None:
    settings, _, predictor = face_model
    frames: list[bytes | DecodedImage] = [
        orl["s5"][8].read_bytes(),
        jpeg(nonfaces[NONFACE_NAMES[0]]),
        read_image(orl["s5"][9], settings),  # decoded frames are accepted too
    ]
    prediction = predictor.predict(frames)
    assert prediction.label == "s5"
    assert prediction.frames_used == 2
    assert [(s.index, s.code) for s in prediction.skipped] == [(1, "face.not_found")]
    assert prediction.to_dict()["skipped_frames"] == [s.to_dict() for s in prediction.skipped]
    # Faces are reported for the first frame that had one.
    assert len(prediction.faces) == 1


def test_no_face_anywhere(face_model: FaceModel, nonfaces: dict[str, np.ndarray]) -> None:
    _, _, predictor = face_model
    photos: list[bytes | DecodedImage] = [jpeg(nonfaces[n]) for n in NONFACE_NAMES[:2]]
    with pytest.raises(NoFaceFound) as exc:
        predictor.predict(photos)
    assert exc.value.code == "face.not_found"
    assert exc.value.details["photos"] == 2
    with pytest.raises(NoFaceFound):
        predictor.predict(photos[0])
    with pytest.raises(InvalidInput) as bad:
        predictor.predict([])
    assert bad.value.code == "input.no_photo"
    with pytest.raises(InvalidImage):
        predictor.predict(b"this is not a photo")


def test_face_index_picks_the_second_face(face_model: FaceModel, two_faces_png: Path) -> None:
    settings, _, predictor = face_model
    image = read_image(two_faces_png, settings)
    first = predictor.predict(image)
    second = predictor.predict(image, face_index=1)
    assert len(first.faces) == len(second.faces) == 2
    assert (first.face_index, second.face_index) == (0, 1)
    assert second.to_dict()["face_box"] == [round(v, 1) for v in second.faces[1].box]
    # s1 is on the left half of the picture, s2 on the right.
    for p in (first, second):
        face = p.face
        assert face is not None
        on_left = face.box[0] + face.box[2] / 2 < image.width / 2
        assert p.label == ("s1" if on_left else "s2")
    assert first.label != second.label
    with pytest.raises(InvalidInput) as exc:
        predictor.predict(image, face_index=2)
    assert exc.value.code == "face.index_out_of_range"


def _serves(predictor: Predictor, photo: bytes, version: str, timeout: float = 60.0) -> int:
    """Predict until ``version`` answers; every answer meanwhile must succeed. Returns how
    many answers came from the previous version."""
    deadline = time.monotonic() + timeout
    before = 0
    while (answer := predictor.predict(photo)).model_version != version:
        before += 1
        assert time.monotonic() < deadline, f"still {answer.model_version}, not {version}"
        time.sleep(0.02)
    return before


def test_predictor_follows_the_champion(face_model: FaceModel, orl: Orl, tmp_path: Path) -> None:
    settings, _, _ = face_model
    settings = Settings(home=copy_home(settings.home, tmp_path / "home"), backbone="face")
    predictor = Predictor(settings)
    pinned = Predictor(settings, version="m0001")
    photo = orl["s7"][9].read_bytes()
    assert predictor.predict(photo).model_version == "m0001"

    with Registry(settings) as registry:
        report = train(settings, head="gallery")
        assert report.version == "m0002"
        registry.register_model(load_model(settings.home, "m0002").info, "test")
        registry.promote("m0002", reason="test", actor="test")
        _serves(predictor, photo, "m0002")  # same object, no restart
        after = predictor.predict(photo)
        assert after.label == "s7"

        registry.rollback(reason="test", actor="test")
        assert registry.champion() == "m0001"
        _serves(predictor, photo, "m0001")
        # wait=True switches here and now.
        registry.promote("m0002", reason="test", actor="test")
        assert predictor.load(wait=True).info.version == "m0002"
        assert predictor.predict(photo).model_version == "m0002"
    assert pinned.predict(photo).model_version == "m0001"  # a pinned version stays put


def test_a_damaged_champion_is_refused_and_the_old_one_serves_on(
    face_model: FaceModel, orl: Orl, tmp_path: Path
) -> None:
    settings, _, _ = face_model
    settings = Settings(home=copy_home(settings.home, tmp_path / "home"), backbone="face")
    predictor = Predictor(settings)
    photo = orl["s7"][9].read_bytes()
    assert predictor.predict(photo).model_version == "m0001"
    with Registry(settings) as registry:
        train(settings, head="gallery")
        registry.register_model(load_model(settings.home, "m0002").info, "test")
        registry.promote("m0002", reason="test", actor="test")
        npz = models_dir(settings.home) / "m0002" / "arrays.npz"
        npz.write_bytes(npz.read_bytes()[:-100])  # damaged after its promotion
        for _ in range(20):
            assert predictor.predict(photo).model_version == "m0001"
            time.sleep(0.02)
        assert "m0002" in predictor.failed
        assert "damaged" in predictor.failed["m0002"][1]


def test_a_gallery_searched_by_an_index_answers_as_the_exact_one(
    face_model: FaceModel, orl: Orl
) -> None:
    settings, _, exact = face_model
    indexed = Predictor(settings.model_copy(update={"gallery_index_min_size": 1}))
    assert indexed.load(wait=True)._search is not None
    assert exact.load(wait=True)._search is None
    for person in [*KNOWN[:3], *STRANGERS[:3]]:
        photo = read_image(orl[person][9], settings)
        want, got = exact.predict(photo), indexed.predict(photo)
        assert (got.kind, got.names) == (want.kind, want.names)
        assert got.match_score == pytest.approx(want.match_score, abs=1e-5)
        assert [m.label for m in got.lookalikes] == [m.label for m in want.lookalikes]
        assert [m.reference for m in got.lookalikes] == [m.reference for m in want.lookalikes]
        assert [n.sha256 for n in got.nearest] == [n.sha256 for n in want.nearest]
