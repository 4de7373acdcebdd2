"""The pages in a real browser (marker ``browser``; fixtures: ``conftest.py``; helpers:
``support.browser``)."""
