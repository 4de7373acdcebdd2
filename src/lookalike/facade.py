"""``Lookalike``: the Python API for scripts and notebooks, one data dir at a time.

    from lookalike import Lookalike

    app = Lookalike("data")              # a data dir (made on first use)
    app.import_images("photos/")         # one folder per class (or a .zip, or a CSV)
    app.train()                          # a model; it serves if it wins on the test set
    answer = app.predict("me.jpg")       # who the face in me.jpg looks like
    print(answer.message)                # "You look like Ada: a strong resemblance, ..."

The same steps as ``lookalike import``, ``lookalike train`` and ``lookalike predict``; the
web service (``lookalike serve``) answers with the model ``train`` made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lookalike.config import Settings, get_settings
from lookalike.kinds import Trigger

if TYPE_CHECKING:
    from lookalike.data.importers import ImportReport
    from lookalike.inference import Prediction, Predictor
    from lookalike.retrain import RetrainResult
    from lookalike.vision.images import DecodedImage


class Lookalike:
    """A data dir: its dataset, its models and the predictor that answers with its champion.

    ``home``: the data dir (default: ``$LOOKALIKE_HOME``). ``settings``: every other
    setting (default: from the environment); ``home`` wins over ``settings.home``."""

    def __init__(self, home: str | Path | None = None, *, settings: Settings | None = None):
        settings = settings or get_settings()
        if home is not None:
            settings = settings.model_copy(update={"home": Path(home)})
        self.settings = settings
        self._predictor: Predictor | None = None

    @property
    def home(self) -> Path:
        return Path(self.settings.home)

    def import_images(self, source: str | Path) -> ImportReport:
        """Import a folder (one subfolder per class), a .zip of one, or a CSV of
        ``path,label``. Idempotent: photos already there are skipped. Problems per file are
        in the report; ``DatasetError`` when nothing could be read at all."""
        from lookalike.data.importers import import_images

        return import_images(Path(source), self.settings)

    def train(self, *, head: str = "auto") -> RetrainResult:
        """Train a model on the dataset; it becomes the champion when it wins on the frozen
        test set (the first model always does). Raises ``RetrainRunning`` when another
        retrain holds the data dir."""
        from lookalike.retrain import retrain

        return retrain(self.settings, trigger=Trigger.MANUAL, actor="python", head=head)

    def predict(
        self,
        photos: str | Path | bytes | Sequence[str | Path | bytes],
        *,
        face_index: int | None = None,
    ) -> Prediction:
        """Who the face in a photo looks like (``Prediction.message``, ``.kind``,
        ``.names``, ``.lookalikes``). A list is one look (a burst of the same person).
        Raises ``CannotJudge`` when no face can be judged, saying why."""
        items = [photos] if isinstance(photos, str | Path | bytes) else list(photos)
        data: list[bytes | DecodedImage] = [
            p if isinstance(p, bytes) else Path(p).read_bytes() for p in items
        ]
        names = [str(p) if not isinstance(p, bytes) else f"photo {i}" for i, p in enumerate(items)]
        return self.predictor.predict(data, face_index=face_index, names=names)

    @property
    def predictor(self) -> Predictor:
        """The predictor (loaded on first use), following the registry's champion."""
        if self._predictor is None:
            from lookalike.inference import Predictor

            self._predictor = Predictor(self.settings)
        return self._predictor
