"""Helpers shared by the test modules (no tests here): data dirs, servers, databases, media.

Test modules import them as ``support.<module>`` (``tests/`` is on ``sys.path``: see the
pytest settings in ``pyproject.toml``); fixtures live in the ``conftest.py`` files.
"""
