"""The dashboard's analytics (fixtures: ``conftest.py``; the seeded log: ``support.analytics``)."""
