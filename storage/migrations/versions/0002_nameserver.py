"""nameserver tables: instances' applied feed position, per-zone query counts

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nameserver_instances",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_change_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nameserver_instances")),
    )
    op.create_table(
        "query_counts",
        sa.Column("zone_name", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("qtype", sa.Integer(), nullable=False),
        sa.Column("rcode", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("zone_name", "day", "qtype", "rcode", name=op.f("pk_query_counts")),
    )


def downgrade() -> None:
    op.drop_table("query_counts")
    op.drop_table("nameserver_instances")
