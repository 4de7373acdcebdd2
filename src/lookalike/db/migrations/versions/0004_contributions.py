"""Contributions: visitors joining the gallery from a short face video or a few photos.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "contributions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("display_name", sa.String(64), nullable=False),
        sa.Column("media", sa.String(8), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("crops", sa.Integer(), nullable=False),
        sa.Column("backbone_key", sa.String(255), nullable=True),
        sa.Column("embeddings", sa.LargeBinary(), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("deletion_token_hash", sa.String(64), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'enrolled', 'refused')",
            name=op.f("ck_contributions_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributions")),
    )
    op.create_index(op.f("ix_contributions_status"), "contributions", ["status"])
    op.create_index(op.f("ix_contributions_updated_at"), "contributions", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_contributions_updated_at"), table_name="contributions")
    op.drop_index(op.f("ix_contributions_status"), table_name="contributions")
    op.drop_table("contributions")
