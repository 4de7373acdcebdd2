"""Importing labelled images (fixtures: ``conftest.py``; helpers: ``support.imports``)."""
