"""The data directory's layout (``LOOKALIKE_HOME``): every path under it, named once.

::

    dataset.json, dataset.lock     catalog of imported images (``data.store``)
    images/ab/<sha256>.<ext>        original bytes, content-addressed
    splits.json, splits.lock        subset of every image + test-set versions (``data.splits``)
    cache/embeddings.sqlite         (backbone key, sha256) -> vector + face facts (``data.cache``)
    backbones/                      ONNX files derived once from installed packages (``vision``)
    models/mNNNN/                   face/image model versions (``artifacts``; with S3,
                                    a cache of the bucket's ``models/``)
    names/nNNNN/                    name generator versions (``names.store``)
    reports/mNNNN/                  ``lookalike evaluate``'s metrics.json + confusion.png
    reports/mNNNN/evaluation-tK.json  the evaluation views on test set version K (a cache)
    reports/dataset-check.json      the dataset checks' latest report (``data.review``)
    retrain.lock                    held by the running retrain (pid and start time inside)
    names.lock                      held by the running name generator training
    retrain.enqueue.lock            held while a retrain is queued (``jobs``)
    retrain.job                     the id of the last queued retrain job
                                    (with a Redis URL the retrain's lock, its enqueue
                                    lock and the last job id are in Redis instead)
    jobs.sqlite3                    the job queue (unless a Redis URL is set)
    lookalike.sqlite3               the database (unless ``database_url`` names another)
    objects/                        object store: signed uploads, photos kept with consent

Code asks ``settings.data_dir`` (a :class:`DataDir`) for a path and never joins names onto
``settings.home`` itself. Nothing here touches the disk: a ``DataDir`` only names paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    """The paths of one data directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- the dataset ---------------------------------------------------------------------
    @property
    def catalog(self) -> Path:
        return self.root / "dataset.json"

    @property
    def catalog_lock(self) -> Path:
        return self.root / "dataset.lock"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def splits(self) -> Path:
        return self.root / "splits.json"

    @property
    def splits_lock(self) -> Path:
        return self.root / "splits.lock"

    @property
    def embedding_cache(self) -> Path:
        return self.root / "cache" / "embeddings.sqlite"

    @property
    def backbones(self) -> Path:
        """Files derived once from installed packages (folded / exported ONNX graphs)."""
        return self.root / "backbones"

    # -- models ----------------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def names(self) -> Path:
        return self.root / "names"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def dataset_check(self) -> Path:
        return self.reports / "dataset-check.json"

    def evaluation_view(self, version: str, test_version: int) -> Path:
        """The cached evaluation views of model ``version`` on test set ``test_version``
        (``version`` must already be a checked version name: it becomes a folder)."""
        return self.reports / version / f"evaluation-t{int(test_version)}.json"

    def artifact(self, relative: str | Path) -> Path:
        """An artifact directory named relative to the data dir (as the registry records
        it: ``models/m0001``, ``names/n0001``); ``ValueError`` for a name that leaves it.
        Checked on the name, not the resolved path: the data dir may use symlinks."""
        relative = Path(relative)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError("artifact path leaves the data dir")
        return self.root / relative

    # -- training and jobs -------------------------------------------------------------------
    @property
    def retrain_lock(self) -> Path:
        return self.root / "retrain.lock"

    @property
    def names_training_lock(self) -> Path:
        return self.root / "names.lock"

    @property
    def retrain_enqueue_lock(self) -> Path:
        return self.root / "retrain.enqueue.lock"

    @property
    def retrain_job(self) -> Path:
        return self.root / "retrain.job"

    @property
    def jobs_queue(self) -> Path:
        return self.root / "jobs.sqlite3"

    # -- the service -------------------------------------------------------------------------
    @property
    def database(self) -> Path:
        """The SQLite database used when no ``database_url`` is set."""
        return self.root / "lookalike.sqlite3"

    @property
    def objects(self) -> Path:
        return self.root / "objects"
