"""Analytics: requests without a face are logged, hourly rollups kept by triggers, indexes.

* ``predictions.outcome`` ('match' | 'no_strong_match' | 'no_face'; old rows: from
  ``no_strong_match``) and ``predictions.latency_bin`` (the latency histogram's bin);
  ``best_label``, ``probability`` and ``match_score`` become nullable (no face, no answer).
* ``prediction_hours`` (per UTC hour, model version and outcome: counts, sums and histograms),
  ``prediction_hour_labels`` (the same keys and the class: counts, likes, dislikes) and
  ``prediction_day_labels`` (per UTC day, version, outcome and class: counts, likes, dislikes,
  latency histogram), filled from the existing rows and kept in step by triggers on
  ``predictions`` (insert, update of the summarised columns, delete), in the writer's
  transaction.
* indexes for latency percentiles, the feedback confusion and per-version exports.

The bins below are frozen copies of ``lookalike.db.models``' edges at this revision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

PROBABILITY_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MATCH_SCORE_EDGES = (
    0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95,
)  # fmt: skip
LATENCY_EDGES_MS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 14, 16, 18, 20, 22,
    24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54,
    56, 58, 60, 65, 70, 75, 80, 85, 90, 95, 100, 120, 140, 160, 180, 200,
    250, 300, 400, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000,
)  # fmt: skip
# An update of any other column (feedback_label, storage_key, ...) leaves the rollups alone.
SUMMARISED = (
    "created_at",
    "model_version",
    "outcome",
    "label",
    "faces_found",
    "probability",
    "match_score",
    "latency_bin",
    "feedback",
)
TRIGGERS = ("predictions_rollup_insert", "predictions_rollup_update", "predictions_rollup_delete")


def _bin_case(column: str, edges: tuple[float, ...]) -> str:
    """``CASE`` giving the bin index of ``column`` (NULL stays NULL)."""
    branches = " ".join(f"WHEN {column} < {edge!r} THEN {i}" for i, edge in enumerate(edges))
    return f"CASE WHEN {column} IS NULL THEN NULL {branches} ELSE {len(edges)} END"


def _flag(condition: str) -> str:
    return f"(CASE WHEN {condition} THEN 1 ELSE 0 END)"


def _hour(created_at: str, dialect: str, seconds: int = 3600) -> str:
    """Hours (or other units of ``seconds``) since 1970-01-01T00:00Z of a timestamp column."""
    if dialect == "postgresql":
        return f"CAST(floor(extract(epoch FROM {created_at}) / {seconds}) AS INTEGER)"
    return f"(CAST(strftime('%s', {created_at}) AS INTEGER) / {seconds})"


def _latency_counts(row: str) -> dict[str, str]:
    return {f"l{i}": _flag(f"{row}.latency_bin = {i}") for i in range(len(LATENCY_EDGES_MS) + 1)}


def _hours_values(row: str) -> dict[str, str]:
    """prediction_hours' columns for one predictions row (``row``: NEW, OLD or a table)."""
    values = {
        "n": "1",
        "several_faces": _flag(f"{row}.faces_found > 1"),
        "sum_probability": f"COALESCE({row}.probability, 0)",
        "sum_match_score": f"COALESCE({row}.match_score, 0)",
    }
    probability = _bin_case(f"{row}.probability", PROBABILITY_EDGES)
    match_score = _bin_case(f"{row}.match_score", MATCH_SCORE_EDGES)
    for i in range(len(PROBABILITY_EDGES) + 1):
        values[f"p{i}"] = _flag(f"{probability} = {i}")
    for i in range(len(MATCH_SCORE_EDGES) + 1):
        values[f"m{i}"] = _flag(f"{match_score} = {i}")
    values.update(_latency_counts(row))
    return values


def _labels_values(row: str) -> dict[str, str]:
    return {
        "n": "1",
        "likes": _flag(f"{row}.feedback = 'like'"),
        "dislikes": _flag(f"{row}.feedback = 'dislike'"),
    }


def _rollups(row: str, dialect: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(table, key columns, summed columns) of each rollup for one predictions row."""
    version = {"model_version": f"{row}.model_version", "outcome": f"{row}.outcome"}
    label = {"label": f"COALESCE({row}.label, '')"}
    hour = {"hour": _hour(f"{row}.created_at", dialect)}
    day = {"day": _hour(f"{row}.created_at", dialect, 86400)}
    return [
        ("prediction_hours", {**hour, **version}, _hours_values(row)),
        ("prediction_hour_labels", {**hour, **version, **label}, _labels_values(row)),
        (
            "prediction_day_labels",
            {**day, **version, **label},
            {**_labels_values(row), **_latency_counts(row)},
        ),
    ]


def _upserts(row: str, sign: int, dialect: str) -> list[str]:
    """Add (sign 1) or subtract (sign -1) one predictions row to every rollup."""
    statements = []
    for table, key_columns, values in _rollups(row, dialect):
        signed = {k: v if sign > 0 else f"-({v})" for k, v in values.items()}
        columns = [*key_columns, *signed]
        expressions = [*key_columns.values(), *signed.values()]
        updates = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in signed)
        statements.append(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(expressions)})"
            f" ON CONFLICT ({', '.join(key_columns)}) DO UPDATE SET {updates}"
        )
        if sign < 0:
            where = " AND ".join(f"{c} = {e}" for c, e in key_columns.items())
            statements.append(f"DELETE FROM {table} WHERE {where} AND n = 0")
    return statements


def _backfill(dialect: str) -> list[str]:
    statements = []
    for table, keys, values in _rollups("p", dialect):
        columns = [*keys, *values]
        selected = [*keys.values(), *(f"SUM({v})" for v in values.values())]
        group = ", ".join(str(i + 1) for i in range(len(keys)))
        statements.append(
            f"INSERT INTO {table} ({', '.join(columns)})"
            f" SELECT {', '.join(selected)} FROM predictions AS p GROUP BY {group}"
        )
    return statements


def _create_triggers(dialect: str) -> None:
    of = ", ".join(SUMMARISED)
    if dialect == "postgresql":
        old = ";\n    ".join(_upserts("OLD", -1, dialect))
        new = ";\n    ".join(_upserts("NEW", 1, dialect))
        op.execute(
            "CREATE FUNCTION predictions_rollup() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF TG_OP IN ('UPDATE', 'DELETE') THEN\n    {old};\n  END IF;\n"
            f"  IF TG_OP IN ('INSERT', 'UPDATE') THEN\n    {new};\n  END IF;\n"
            "  RETURN NULL;\n"
            "END\n$$"
        )
        op.execute(
            f"CREATE TRIGGER predictions_rollup AFTER INSERT OR DELETE OR UPDATE OF {of}"
            " ON predictions FOR EACH ROW EXECUTE FUNCTION predictions_rollup()"
        )
        return
    bodies = {
        "predictions_rollup_insert": ("AFTER INSERT", _upserts("NEW", 1, dialect)),
        "predictions_rollup_update": (
            f"AFTER UPDATE OF {of}",
            _upserts("OLD", -1, dialect) + _upserts("NEW", 1, dialect),
        ),
        "predictions_rollup_delete": ("AFTER DELETE", _upserts("OLD", -1, dialect)),
    }
    for name, (when, statements) in bodies.items():
        body = "".join(f"\n  {s};" for s in statements)
        op.execute(f"CREATE TRIGGER {name} {when} ON predictions FOR EACH ROW BEGIN{body}\nEND")


def _drop_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS predictions_rollup ON predictions")
        op.execute("DROP FUNCTION IF EXISTS predictions_rollup()")
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _counts(prefix: str, edges: tuple[float, ...]) -> list[sa.Column[int]]:
    return [
        sa.Column(f"{prefix}{i}", sa.Integer(), server_default="0", nullable=False)
        for i in range(len(edges) + 1)
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(
            sa.Column("outcome", sa.String(16), server_default="match", nullable=False)
        )
        batch.add_column(sa.Column("latency_bin", sa.SmallInteger(), nullable=True))
        batch.alter_column("best_label", existing_type=sa.String(255), nullable=True)
        batch.alter_column("probability", existing_type=sa.Float(), nullable=True)
        batch.alter_column("match_score", existing_type=sa.Float(), nullable=True)
        batch.create_check_constraint(
            op.f("ck_predictions_outcome"), "outcome IN ('match', 'no_strong_match', 'no_face')"
        )
    op.execute("UPDATE predictions SET outcome = 'no_strong_match' WHERE no_strong_match")
    op.execute(f"UPDATE predictions SET latency_bin = {_bin_case('latency_ms', LATENCY_EDGES_MS)}")
    with op.batch_alter_table("predictions") as batch:
        batch.alter_column("latency_bin", existing_type=sa.SmallInteger(), nullable=False)

    op.create_index(
        "ix_predictions_latency_bin",
        "predictions",
        ["latency_bin", "created_at", "latency_ms", "outcome", "model_version", "label"],
    )
    op.create_index(
        "ix_predictions_latency",
        "predictions",
        ["latency_ms", "created_at", "outcome", "model_version", "label"],
    )
    op.create_index(
        "ix_predictions_label_latency",
        "predictions",
        ["label", "outcome", "latency_ms", "created_at", "model_version"],
    )
    op.create_index(
        "ix_predictions_label_created_at",
        "predictions",
        [
            "label",
            "outcome",
            "created_at",
            "latency_ms",
            "model_version",
            "probability",
            "match_score",
            "faces_found",
        ],
    )
    op.create_index(
        "ix_predictions_model_version_created_at", "predictions", ["model_version", "created_at"]
    )
    op.create_index(
        "ix_predictions_feedback",
        "predictions",
        ["feedback_label", "created_at", "best_label", "model_version", "label", "outcome"],
        sqlite_where=sa.text("feedback_label IS NOT NULL"),
        postgresql_where=sa.text("feedback_label IS NOT NULL"),
    )

    op.create_table(
        "prediction_hours",
        sa.Column("hour", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("several_faces", sa.Integer(), server_default="0", nullable=False),
        sa.Column("sum_probability", sa.Float(), server_default="0", nullable=False),
        sa.Column("sum_match_score", sa.Float(), server_default="0", nullable=False),
        *_counts("p", PROBABILITY_EDGES),
        *_counts("m", MATCH_SCORE_EDGES),
        *_counts("l", LATENCY_EDGES_MS),
        sa.PrimaryKeyConstraint(
            "hour", "model_version", "outcome", name=op.f("pk_prediction_hours")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "prediction_hour_labels",
        sa.Column("hour", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("likes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dislikes", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "hour", "model_version", "outcome", "label", name=op.f("pk_prediction_hour_labels")
        ),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "prediction_day_labels",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("n", sa.Integer(), server_default="0", nullable=False),
        sa.Column("likes", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dislikes", sa.Integer(), server_default="0", nullable=False),
        *_counts("l", LATENCY_EDGES_MS),
        sa.PrimaryKeyConstraint(
            "day", "model_version", "outcome", "label", name=op.f("pk_prediction_day_labels")
        ),
        sqlite_with_rowid=False,
    )
    for statement in _backfill(dialect):
        op.execute(statement)
    _create_triggers(dialect)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_triggers(dialect)
    op.drop_table("prediction_day_labels")
    op.drop_table("prediction_hour_labels")
    op.drop_table("prediction_hours")
    for name in (
        "ix_predictions_feedback",
        "ix_predictions_model_version_created_at",
        "ix_predictions_label_created_at",
        "ix_predictions_label_latency",
        "ix_predictions_latency",
        "ix_predictions_latency_bin",
    ):
        op.drop_index(name, table_name="predictions")
    # Requests without a face have no answer to keep under the old schema.
    op.execute("DELETE FROM predictions WHERE outcome = 'no_face'")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_constraint(op.f("ck_predictions_outcome"), type_="check")
        batch.drop_column("latency_bin")
        batch.drop_column("outcome")
        batch.alter_column("best_label", existing_type=sa.String(255), nullable=False)
        batch.alter_column("probability", existing_type=sa.Float(), nullable=False)
        batch.alter_column("match_score", existing_type=sa.Float(), nullable=False)
