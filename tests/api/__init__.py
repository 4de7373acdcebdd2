"""The web API's tests (fixtures: ``conftest.py``; helpers: ``support.api``)."""
