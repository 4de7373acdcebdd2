"""lookalike: who (character, celebrity, person) or what class does a face resemble?

The Python API is small and imported lazily (``import lookalike`` loads nothing heavy)::

    from lookalike import Lookalike

    app = Lookalike("data")            # a data dir
    app.import_images("photos/")       # one folder per class
    app.train()                        # a model; it serves if it wins on the test set
    print(app.predict("me.jpg").message)

* ``Lookalike``: import, train, predict on one data dir (``lookalike.facade``);
* ``Settings``: every setting (env ``LOOKALIKE_*``);
* ``Predictor`` and ``Prediction``: answers for a long-running caller;
* ``create_app``: the web service (FastAPI) for one ``Settings``;
* ``LookalikeError``, ``CannotJudge``: the errors a caller handles (``code``, ``message``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Lookalike": "lookalike.facade",
    "Settings": "lookalike.config",
    "Predictor": "lookalike.inference",
    "Prediction": "lookalike.inference",
    "create_app": "lookalike.api",
    "LookalikeError": "lookalike.errors",
    "CannotJudge": "lookalike.errors",
}

__all__ = [
    "CannotJudge",
    "Lookalike",
    "LookalikeError",
    "Prediction",
    "Predictor",
    "Settings",
    "__version__",
    "create_app",
]

if TYPE_CHECKING:
    from lookalike.api import create_app
    from lookalike.config import Settings
    from lookalike.errors import CannotJudge, LookalikeError
    from lookalike.facade import Lookalike
    from lookalike.inference import Prediction, Predictor


def __getattr__(name: str) -> Any:
    # PEP 562: the heavy modules are imported on first use, so that `import lookalike.x`
    # (every module imports this package first) stays cheap and keeps the layering.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lookalike' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
