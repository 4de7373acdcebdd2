"""Initial schema: predictions and uploads.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(255), nullable=False),
        sa.Column("label", sa.String(255), nullable=True),
        sa.Column("best_label", sa.String(255), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("probabilities", sa.JSON(), nullable=False),
        sa.Column("match_score", sa.Float(), nullable=False),
        sa.Column("no_strong_match", sa.Boolean(), nullable=False),
        sa.Column("faces_found", sa.Integer(), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=True),
        sa.Column("frames_used", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("client", sa.String(16), nullable=False),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=True),
        sa.Column("deletion_token_hash", sa.String(64), nullable=True),
        sa.Column("feedback", sa.String(16), nullable=True),
        sa.Column("feedback_label", sa.String(255), nullable=True),
        sa.Column("feedback_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.CheckConstraint("client IN ('web', 'api')", name=op.f("ck_predictions_client")),
        sa.CheckConstraint(
            "feedback IS NULL OR feedback IN ('like', 'dislike')",
            name=op.f("ck_predictions_feedback"),
        ),
    )
    op.create_index(op.f("ix_predictions_created_at"), "predictions", ["created_at"])
    op.create_index(op.f("ix_predictions_label"), "predictions", ["label"])

    op.create_table(
        "uploads",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("max_bytes", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_uploads")),
    )
    op.create_index(op.f("ix_uploads_expires_at"), "uploads", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_uploads_expires_at"), table_name="uploads")
    op.drop_table("uploads")
    op.drop_index(op.f("ix_predictions_label"), table_name="predictions")
    op.drop_index(op.f("ix_predictions_created_at"), table_name="predictions")
    op.drop_table("predictions")
