"""The admin dashboard's numbers, computed in the database.

* ``filters`` — the common filters (date range in the configured time zone, model version,
  class) parsed and validated at the edge;
* ``timebuckets`` — local-time buckets in SQL: the UTC offsets of the zone over the queried
  range (from zoneinfo) become a ``CASE``, then integer arithmetic (both databases);
* ``facts`` — where the rows come from: the hourly rollups kept by triggers
  (``prediction_hours``, ``prediction_hour_labels``, see ``lookalike.db.models``) for whole
  hours, the prediction log itself (grouped) for the partial hours at the range's edges;
* ``percentiles`` — nearest-rank latency percentiles: a histogram from the rollup finds the
  bin, an index finds the value (every lookup of a request in one statement);
* ``drift`` — how far a day's confidences are from the model's held-out reference;
* ``queries`` — one function per dashboard endpoint; ``export`` — the log as CSV / JSON.

Nothing here imports at package import time, so ``lookalike.db`` may use it freely.
"""
