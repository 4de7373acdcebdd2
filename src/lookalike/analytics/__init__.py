"""The admin dashboard's numbers, computed in the database.

* ``filters`` — the common filters (date range in the configured time zone, model version,
  class) parsed and validated at the edge;
* ``timebuckets`` — local-time buckets in SQL: ``AT TIME ZONE`` on PostgreSQL; on SQLite the
  UTC offsets of the zone over the queried range (from zoneinfo) become a ``CASE``;
* ``facts`` — where the rows come from: the hourly rollups kept by triggers
  (``prediction_hours``, ``prediction_hour_labels``, see ``lookalike.db.models``) for whole
  hours, the prediction log itself for the partial hours at the range's edges;
* ``percentiles`` — nearest-rank latency percentiles (``percentile_disc`` on PostgreSQL; on
  SQLite a histogram from the rollup finds the bin, an index finds the value);
* ``drift`` — how far a day's confidences are from the model's held-out reference;
* ``queries`` — one function per dashboard endpoint; ``export`` — the log as CSV / JSON.

Nothing here imports at package import time, so ``lookalike.db`` may use it freely.
"""
