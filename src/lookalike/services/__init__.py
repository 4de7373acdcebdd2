"""The service layer: what the web service and the CLI ask of the engine, as plain functions.

The HTTP edge (``lookalike.api``) parses a request, calls one function here and shapes its
result with one response model; the CLI calls the same functions. Nothing here knows HTTP:
functions take the objects they work on (a session factory, the object store, the
predictor, the registry) and raise ``lookalike.errors`` exceptions, which carry their HTTP
status for the edge. See ``docs/architecture.md``.

* ``predictions``: answer photos and log the answer (``PredictionRecord`` rows), record
  requests that could not be judged, feedback, deleting a kept photo;
* ``uploads``: signed single-use upload URLs and their bytes;
* ``models``: promote, roll back, queue a retrain, the public view of a version.
"""
