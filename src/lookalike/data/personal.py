"""Personal photos in the training set, and removing every copy of them.

Two kinds of dataset records belong to a person who may take them back (their sources'
prefixes are in ``data/store.py``):

* ``visitor:<prediction id>``: a visitor's kept photo they labelled (``data/visitors.py``);
* ``contribution:<contribution id>``: the face crops of someone who joined the gallery
  (``data/contributors.py``).

Both always train (never in the frozen test set, which stays the operator's photos), and a
model lists the ones it was trained on (``ModelInfo.personal_sources``), so that a model
trained on something deleted since is known, refused for serving and replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lookalike.config import Settings
from lookalike.data.cache import embedding_cache
from lookalike.data.importers import FileProblem
from lookalike.data.splits import SplitStore
from lookalike.data.store import DatasetStore, ImageRecord
from lookalike.fsutil import file_lock


@dataclass
class GatherReport:
    """What gathering personal photos into the dataset before a retrain did."""

    added: int = 0  # images
    forgotten: int = 0  # images whose owners deleted them since the last gathering
    problems: list[FileProblem] = field(default_factory=list)


def forget_sources(settings: Settings, sources: set[str]) -> list[ImageRecord]:
    """Remove every dataset record of ``sources``: the catalog rows, the image blobs, the
    cached embeddings and the split entries (not even a hash stays). Returns the removed."""
    if not sources:
        return []
    store = DatasetStore(settings)
    cache = embedding_cache(settings.data_dir)
    with file_lock(store.lock_path):
        catalog = store.load()
        gone = [r for r in catalog.images.values() if r.source in sources]
        for record in gone:
            del catalog.images[record.sha256]
        if gone:
            store.save(catalog)
    for record in gone:
        store.remove_blob(record)
        cache.delete(record.sha256)
    SplitStore(settings).forget({r.sha256 for r in gone})
    return gone
