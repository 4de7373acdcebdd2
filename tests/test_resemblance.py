"""The three kinds of answer on real ORL faces: "this is X", "you look like X" (a tie names
two), "cannot judge"; the calibration stored with the model; bursts, visits and their tokens."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.training import KNOWN, FaceModel, copy_home

from lookalike.artifacts import load_model, models_dir
from lookalike.config import DEFAULT_TIE_Z, Settings
from lookalike.errors import CannotJudge, InvalidInput, NoFaceFound
from lookalike.inference import LOOKALIKE, SAME_PERSON, Predictor, Visit
from lookalike.scoring.resemblance import Resemblance, strength_phrase, strength_words
from lookalike.vision.backbones import l2_normalize
from lookalike.vision.images import read_image
from lookalike.vision.quality import measure
from lookalike.visits import decode_visit, encode_visit

Orl = dict[str, list[Path]]
STRANGERS = [f"s{i}" for i in range(30, 40)]  # never imported


def grey(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)


def png(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", rgb)
    assert ok
    return buf.tobytes()


def test_calibration_is_stored_with_the_model_and_reloaded(face_model: FaceModel) -> None:
    settings, _, _ = face_model
    loaded = load_model(settings.home, "m0001")
    info = loaded.info.resemblance
    assert info["tie_z"] == DEFAULT_TIE_Z
    assert 0 < info["noise"] < 0.5
    assert info["strangers"] == len(loaded.gallery)  # every gallery photo, its class left out
    with np.load(models_dir(settings.home) / "m0001" / "arrays.npz") as npz:
        assert {"resemblance_centre", "resemblance_centroids", "resemblance_reference"} <= set(
            npz.files
        )
        reference = npz["resemblance_reference"]
    res = loaded.resemblance
    assert np.array_equal(res.reference, reference)
    assert np.all(np.diff(res.reference) >= 0)
    # The stored calibration is what fitting on the gallery gives.
    again = Resemblance.fit(loaded.gallery, loaded.gallery_labels, len(loaded.info.labels), 0.4)
    assert np.allclose(again.reference, res.reference, atol=1e-5)
    assert again.noise == pytest.approx(res.noise, rel=1e-4)
    # Strength: the share of strangers below; monotone, 0 below all, 1 above all.
    grid = np.linspace(-1, 1, 50)
    strength = res.strength(grid)
    assert strength[0] == 0.0 and strength[-1] == 1.0 and np.all(np.diff(strength) >= 0)
    assert res.strength(np.array([np.median(res.reference)]))[0] == pytest.approx(0.5, abs=0.02)
    assert strength_phrase(0.87) == "stronger than 87% of people's best match here"
    assert strength_phrase(1.0) == "stronger than nearly everyone's best match here"
    assert strength_phrase(0.0) == "weaker than nearly everyone's best match here"


def test_a_model_saved_before_the_calibration_gets_one_when_loaded(
    face_model: FaceModel, tmp_path: Path, orl: Orl
) -> None:
    settings, _, _ = face_model
    home = copy_home(settings.home, tmp_path / "home")
    folder = models_dir(home) / "m0001"
    with np.load(folder / "arrays.npz") as npz:
        arrays = {k: npz[k] for k in npz.files if not k.startswith("resemblance_")}
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    (folder / "arrays.npz").write_bytes(buf.getvalue())
    meta = json.loads((folder / "model.json").read_text())
    meta.pop("resemblance")
    import hashlib

    meta["files"]["arrays.npz"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (folder / "model.json").write_text(json.dumps(meta))

    old = Predictor(Settings(home=home, backbone="face"), version="m0001")
    new = Predictor(settings, version="m0001")
    photo = orl["s33"][2].read_bytes()
    a, b = old.predict(photo), new.predict(photo)
    assert a.names == b.names and a.kind == b.kind == LOOKALIKE
    assert [x.strength for x in a.lookalikes] == pytest.approx([x.strength for x in b.lookalikes])


def test_someone_in_the_gallery_is_told_this_is_them(face_model: FaceModel, orl: Orl) -> None:
    settings, _, predictor = face_model
    for person in KNOWN[:6]:
        p = predictor.predict(read_image(orl[person][9], settings))  # never imported
        assert p.kind == SAME_PERSON and p.names == [person] and p.label == person
        assert not p.tie and not p.no_strong_match
        assert p.message == f"This is {person}."
        assert p.lookalikes[0].label == person  # that person first
        assert p.lookalikes[0].reference is not None
        assert p.lookalikes[0].reference.label == person
        assert len(p.lookalikes) == settings.lookalikes_shown


def test_strangers_get_named_lookalikes_with_strengths(face_model: FaceModel, orl: Orl) -> None:
    settings, _, predictor = face_model
    kinds, ties = [], 0
    for person in STRANGERS:
        for photo in orl[person][:4]:
            p = predictor.predict(read_image(photo, settings))
            kinds.append(p.kind)
            if p.kind != LOOKALIKE:
                continue
            assert p.label is None and p.no_strong_match
            assert 1 <= len(p.names) <= 2 and p.names[0] == p.best_label
            assert p.names == [x.label for x in p.lookalikes[: len(p.names)]]
            assert len(p.lookalikes) == settings.lookalikes_shown
            scores = [x.score for x in p.lookalikes]
            assert scores == sorted(scores, reverse=True)
            for x in p.lookalikes:
                assert 0.0 <= x.strength <= 1.0
                assert x.reference is not None and x.reference.label == x.label
                assert Path(x.reference.path).is_file()
            assert p.names[0] in p.message
            assert strength_words(p.lookalikes[0].strength) in p.message or p.tie
            assert strength_phrase(p.lookalikes[0].strength) in p.message or p.tie
            ties += p.tie
            answer = p.to_dict()["answer"]
            assert answer["kind"] == "lookalike" and answer["names"] == p.names
            assert answer["lookalikes"][0]["strength_words"] in {
                "very strong", "strong", "moderate", "slight"
            }  # fmt: skip
    # Everyone is named someone: never "no strong match", rarely "this is X".
    assert kinds.count(LOOKALIKE) / len(kinds) >= 0.95, kinds
    assert 0 < ties < len(kinds)  # some photos are ties, most are not


def test_a_tie_is_called_exactly_when_the_top_two_are_within_the_noise(
    face_model: FaceModel, orl: Orl
) -> None:
    settings, _, predictor = face_model
    res = predictor.load().resemblance
    seen = {True: 0, False: 0}
    for person in STRANGERS:
        for photo in orl[person][:3]:
            p = predictor.predict(read_image(photo, settings))
            if p.kind != LOOKALIKE:
                continue
            gap = p.lookalikes[0].score - p.lookalikes[1].score
            assert p.tie == (gap < res.tie_gap(1)), (gap, res.tie_gap(1))
            assert len(p.names) == (2 if p.tie else 1)
            seen[p.tie] += 1
            if p.tie:
                assert p.message.startswith(f"You look like {p.names[0]} and {p.names[1]}")
    assert seen[True] and seen[False]
    # More looks averaged: less noise, a narrower tie band; tie_z 0 never ties.
    assert res.tie_gap(4) == pytest.approx(res.tie_gap(1) / 2)
    assert Resemblance(res.centre, res.centroids, res.reference, res.noise, 0.0).tie_gap() == 0


def test_faces_too_poor_to_judge_are_answered_cannot_judge(
    face_model: FaceModel, orl: Orl, tmp_path: Path, nonfaces: dict[str, np.ndarray]
) -> None:
    settings, _, _ = face_model
    photo = read_image(orl["s34"][0], settings)
    cases = {
        "face.too_small": {"judge_min_face_px": 500},
        "face.too_dark": {"judge_min_brightness": 250},
        "face.blurry": {"judge_min_sharpness": 5.0},
    }
    for code, strict in cases.items():
        predictor = Predictor(settings.model_copy(update=strict))
        with pytest.raises(CannotJudge) as exc:
            predictor.predict(photo)
        assert exc.value.code == code and exc.value.status == 422
        assert exc.value.details["answer"] == "cannot_judge"
        assert set(exc.value.details["quality"]) == {"face_px", "brightness", "sharpness"}
        assert len(exc.value.details["faces"]) == 1
        assert "try again" in exc.value.message or "closer" in exc.value.message
        # A burst where every frame fails says why, once.
        with pytest.raises(CannotJudge) as burst:
            predictor.predict([photo, photo])
        assert burst.value.code == code and burst.value.details["photos"] == 2
    with pytest.raises(NoFaceFound) as none:
        Predictor(settings).predict(png(nonfaces["coffee"]))
    assert none.value.details["answer"] == "cannot_judge"


def test_quality_measures_follow_the_photo(face_model: FaceModel, orl: Orl) -> None:
    """Real degradations move the measures the way the thresholds assume."""
    settings, _, predictor = face_model
    backbone = predictor._load()[1].wide
    clean = grey(orl["s35"][0])
    variants = {
        "clean": clean,
        "blurred": cv2.GaussianBlur(clean, (0, 0), 3),
        "dark": (clean * 0.1).astype(np.uint8),
    }
    q = {}
    for name, rgb in variants.items():
        analysis = backbone.analyze(rgb)
        assert analysis.crop is not None and analysis.face is not None
        q[name] = measure(analysis.crop, analysis.face)
    assert q["blurred"].sharpness < q["clean"].sharpness / 10
    assert q["dark"].brightness < q["clean"].brightness / 5
    assert q["clean"].face_px > 50
    # The clean photo passes the default thresholds.
    assert q["clean"].sharpness > settings.judge_min_sharpness
    assert q["clean"].brightness > settings.judge_min_brightness


def test_a_visit_answers_its_photos_together(face_model: FaceModel, orl: Orl) -> None:
    settings, _, predictor = face_model
    photos = [read_image(p, settings) for p in orl["s36"][:3]]
    first = predictor.predict(photos[0])
    second = predictor.predict(photos[1], visit=first.visit())
    third = predictor.predict(photos[2], visit=second.visit())
    assert (first.looks, second.looks, third.looks) == (1, 2, 3)
    # The visit's answer is the answer for the three photos' averaged faces.
    singles = [predictor.predict(p).vector for p in photos]
    together = l2_normalize(np.mean(singles, axis=0))
    assert np.allclose(third.vector, together, atol=1e-5)
    scores = predictor.load().resemblance.scores(together)[0]
    assert third.lookalikes[0].score == pytest.approx(float(scores.max()), abs=1e-5)
    # A burst is one look: its frames are averaged, not counted as several photos.
    burst = predictor.predict(photos)
    assert burst.frames_used == 3 and burst.looks == 1
    assert np.allclose(burst.vector, together, atol=1e-5)
    # A visit made in another embedding space is dropped (the champion changed backbone).
    other = Visit(first.vector, 5, "image@other")
    assert predictor.predict(photos[0], visit=other).looks == 1


def test_visit_tokens_are_signed_expire_and_follow_the_backbone(
    face_model: FaceModel, orl: Orl
) -> None:
    settings, _, predictor = face_model
    p = predictor.predict(orl["s37"][0].read_bytes())
    key, dim = p.backbone_key, len(p.vector)
    token = encode_visit(p.visit(), settings)
    back = decode_visit(token, settings, key, dim)
    assert back is not None and back.looks == 1
    assert np.allclose(back.vector, p.visit_mean, atol=2e-3)  # float16 on the wire
    assert decode_visit(token, settings, "image@1", dim) is None  # another backbone

    prefix, payload, mac = token.split(".")
    altered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for bad in (
        f"{prefix}.{altered}.{mac}",
        f"{prefix}.{payload}.{mac[:-1]}",
        "v2." + token[3:],
        "garbage",
        token + ".x",
    ):
        with pytest.raises(InvalidInput) as exc:
            decode_visit(bad, settings, key, dim)
        assert exc.value.code == "visit.invalid"
    other_secret = settings.model_copy(update={"secret_key": "x" * 40})
    with pytest.raises(InvalidInput):
        decode_visit(token, other_secret, key, dim)
    old = encode_visit(p.visit(), settings, now=time.time() - settings.visit_minutes * 60 - 5)
    with pytest.raises(InvalidInput) as expired:
        decode_visit(old, settings, key, dim)
    assert expired.value.code == "visit.expired"
