"""The service layer and the Python API, without HTTP: what the web routes and the CLI call.

A fresh data dir per module, built the way a script would: ``Lookalike(home)`` imports ORL
people s1-s4 (photos 1-6), trains and answers; the service functions then record, rate and
delete answers on the same data dir's own SQLite database.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

import lookalike
from lookalike import CannotJudge, Lookalike
from lookalike.config import Settings
from lookalike.db import PredictionRecord, init_db, make_engine, session_factory
from lookalike.errors import LookalikeError, NotFound
from lookalike.registry import Registry
from lookalike.services import models, predictions
from lookalike.services.predictions import Photo, PredictOptions
from lookalike.storage import ObjectStore

Orl = dict[str, list[Path]]
PEOPLE = ["s1", "s2", "s3", "s4"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, orl: Orl) -> Lookalike:
    root = tmp_path_factory.mktemp("python_api")
    for person in PEOPLE:
        (root / "photos" / person).mkdir(parents=True)
        for photo in orl[person][:6]:
            shutil.copy(photo, root / "photos" / person / photo.name)
    app = Lookalike(root / "home", settings=Settings(backbone="face", secret_key="k" * 32))
    report = app.import_images(root / "photos")
    assert (report.added, report.rejected) == (24, 0)
    result = app.train()
    assert result.promoted and result.champion == result.version
    return app


def test_the_package_exports_a_small_api_lazily() -> None:
    assert set(lookalike.__all__) >= {"Lookalike", "Settings", "Predictor", "create_app"}
    assert lookalike.Lookalike is Lookalike
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        lookalike.nothing  # noqa: B018


def test_a_script_imports_trains_and_predicts(app: Lookalike, orl: Orl) -> None:
    same = app.predict(orl["s2"][8])  # a held-out photo of someone in the gallery
    assert (same.kind, same.names) == ("same_person", ["s2"])
    assert same.message == "This is s2."
    stranger = app.predict(orl["s30"][0])  # nobody in the gallery: their lookalikes
    assert stranger.kind == "lookalike" and stranger.names[0] in PEOPLE
    assert stranger.message.startswith("You look like ")
    first = stranger.lookalikes[0]
    assert first.label == stranger.names[0] and 0 <= first.strength <= 1
    assert first.strength_words in first.to_dict()["strength_words"]
    burst = app.predict([orl["s3"][7], orl["s3"][8]])  # one look of two frames
    assert burst.frames_used == 2 and burst.names == ["s3"]


def test_a_photo_without_a_face_cannot_be_judged(app: Lookalike, nonfaces: dict) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(nonfaces["rocket"]).save(buf, "PNG")
    with pytest.raises(CannotJudge) as caught:
        app.predict(buf.getvalue())
    assert caught.value.code == "face.not_found"


def test_a_burst_names_the_frames_it_skipped(app: Lookalike, orl: Orl, nonfaces: dict) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(nonfaces["coffee"]).save(buf, "PNG")
    answer = app.predict([orl["s1"][7], buf.getvalue()])
    assert answer.frames_used == 1
    assert [(s.index, s.code) for s in answer.skipped] == [(1, "face.not_found")]
    assert answer.to_dict()["skipped_frames"][0]["index"] == 1


def test_answers_are_recorded_rated_and_their_photos_deleted(app: Lookalike, orl: Orl) -> None:
    settings = app.settings
    init_db(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    store = ObjectStore(settings)
    data = orl["s4"][9].read_bytes()
    try:
        recorded = predictions.answer_and_record(
            app.predictor,
            sessions,
            store,
            [Photo(data, "photo 0")],
            PredictOptions(consent=True, client="api"),
        )
        record = recorded.record
        assert record.consent and record.storage_key is not None
        assert store.get(record.storage_key) == data  # kept with consent, byte for byte
        assert recorded.deletion_token and record.deletion_token_hash == predictions.token_hash(
            recorded.deletion_token
        )
        with sessions() as session:
            with pytest.raises(LookalikeError) as refused:
                predictions.give_feedback(session, settings, record.id, "like", None, "wrong")
            assert refused.value.code == "feedback.bad_token"
        with sessions() as session:
            rated = predictions.give_feedback(
                session, settings, record.id, "dislike", "s1", recorded.feedback_token
            )
            assert (rated.feedback, rated.feedback_label) == ("dislike", "s1")
        with sessions() as session, Registry(settings, engine) as registry:
            with pytest.raises(LookalikeError) as wrong:
                predictions.delete_kept_photo(session, store, registry, record.id, "nope")
            assert wrong.value.code == "prediction.bad_token"
            predictions.delete_kept_photo(
                session, store, registry, record.id, recorded.deletion_token
            )
        with pytest.raises(NotFound):
            store.get(record.storage_key)
        with sessions() as session:
            row = session.scalars(
                select(PredictionRecord).where(PredictionRecord.id == record.id)
            ).one()
            assert row.storage_key is None
    finally:
        engine.dispose()


def test_a_request_that_cannot_be_judged_is_logged_without_the_photo(
    app: Lookalike, nonfaces: dict
) -> None:
    import io

    from PIL import Image

    settings = app.settings
    init_db(settings.effective_database_url)
    engine = make_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    buf = io.BytesIO()
    Image.fromarray(nonfaces["chelsea"]).save(buf, "PNG")
    try:
        with sessions() as session:
            before = len(session.scalars(select(PredictionRecord)).all())
        with pytest.raises(CannotJudge):
            predictions.answer_and_record(
                app.predictor,
                sessions,
                ObjectStore(settings),
                [Photo(buf.getvalue(), "photo 0")],
                PredictOptions(consent=True),
            )
        with sessions() as session:
            rows = session.scalars(select(PredictionRecord)).all()
        assert len(rows) == before + 1
        assert (rows[-1].outcome, rows[-1].consent, rows[-1].storage_key) == (
            "no_face",
            False,
            None,
        )
    finally:
        engine.dispose()


def test_the_registry_view_hides_authors_unless_asked(app: Lookalike) -> None:
    with Registry(app.settings) as registry:
        row = registry.versions()[0]
        aliases = registry.aliases()
        events = registry.events(row.kind, row.version)
    public = models.version_view(row, models.alias_of(row.version, aliases), show_authors=False)
    full = models.version_view(row, "champion", show_authors=True)
    assert public["alias"] == "champion" and public["created_by"] is None
    assert full["created_by"] == "python (manual)"
    assert public["classes"] == len(PEOPLE) == len(public["labels"])
    assert all(models.event_view(e, show_authors=False)["actor"] is None for e in events)
