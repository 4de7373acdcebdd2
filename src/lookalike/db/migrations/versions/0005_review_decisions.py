"""Review decisions: the admins' review queue and its audit trail.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("prediction_id", sa.String(32), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("label_before", sa.String(255), nullable=True),
        sa.Column("label_after", sa.String(255), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(255), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_revision", sa.Integer(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('keep', 'relabel', 'delete', 'not_a_face', 'label')",
            name=op.f("ck_review_decisions_action"),
        ),
        sa.CheckConstraint(
            "(sha256 IS NOT NULL AND prediction_id IS NULL)"
            " OR (sha256 IS NULL AND prediction_id IS NOT NULL)",
            name=op.f("ck_review_decisions_target"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_decisions")),
    )
    op.create_index(op.f("ix_review_decisions_decided_at"), "review_decisions", ["decided_at"])
    op.create_index(
        op.f("ix_review_decisions_prediction_id"), "review_decisions", ["prediction_id"]
    )
    op.create_index(op.f("ix_review_decisions_sha256"), "review_decisions", ["sha256"])


def downgrade() -> None:
    op.drop_index(op.f("ix_review_decisions_sha256"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_prediction_id"), table_name="review_decisions")
    op.drop_index(op.f("ix_review_decisions_decided_at"), table_name="review_decisions")
    op.drop_table("review_decisions")
