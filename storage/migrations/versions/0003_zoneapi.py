"""zoneapi tables: sessions, API tokens, step-ups, one-time codes, recovery
codes, password resets, login throttling, known addresses, outbox

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=f"fk_{table}_user_id_users", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "api_sessions",
        sa.Column("id", PK, nullable=False),
        sa.Column("sid_hash", sa.String(64), nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("source_ip", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        _user_fk("api_sessions"),
        sa.PrimaryKeyConstraint("id", name="pk_api_sessions"),
        sa.UniqueConstraint("sid_hash", name="uq_api_sessions_sid_hash"),
    )
    op.create_index("ix_api_sessions_user_id", "api_sessions", ["user_id"])
    op.create_table(
        "api_tokens",
        sa.Column("id", PK, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("max_unused_s", sa.Integer(), nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.Column("allowed_subnets", sa.JSON(), nullable=False),
        sa.Column("policies", sa.JSON(), nullable=False),
        sa.Column("perm_manage", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        _user_fk("api_tokens"),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "api_step_ups",
        sa.Column("id", PK, nullable=False),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(320), nullable=True),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_step_ups"),
    )
    op.create_index("ix_api_step_ups_credential", "api_step_ups", ["credential"])
    op.create_table(
        "api_one_time_codes",
        sa.Column("id", PK, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("credential", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(320), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("used_at", TS, nullable=True),
        _user_fk("api_one_time_codes"),
        sa.PrimaryKeyConstraint("id", name="pk_api_one_time_codes"),
    )
    op.create_index("ix_api_one_time_codes_user_id", "api_one_time_codes", ["user_id"])
    op.create_table(
        "api_recovery_codes",
        sa.Column("id", PK, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("used_at", TS, nullable=True),
        _user_fk("api_recovery_codes"),
        sa.PrimaryKeyConstraint("id", name="pk_api_recovery_codes"),
    )
    op.create_index("ix_api_recovery_codes_user_id", "api_recovery_codes", ["user_id"])
    op.create_table(
        "api_password_resets",
        sa.Column("id", PK, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        _user_fk("api_password_resets"),
        sa.PrimaryKeyConstraint("id", name="pk_api_password_resets"),
        sa.UniqueConstraint("token_hash", name="uq_api_password_resets_token_hash"),
    )
    op.create_index("ix_api_password_resets_user_id", "api_password_resets", ["user_id"])
    op.create_table(
        "api_login_throttle",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_api_login_throttle"),
    )
    op.create_table(
        "api_known_addresses",
        sa.Column("id", PK, nullable=False),
        sa.Column("user_id", PK, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        _user_fk("api_known_addresses"),
        sa.PrimaryKeyConstraint("id", name="pk_api_known_addresses"),
    )
    op.create_index(
        "ix_api_known_addresses_user_address", "api_known_addresses", ["user_id", "address"],
        unique=True,
    )
    op.create_table(
        "api_outbox",
        sa.Column("id", PK, nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_outbox"),
    )
    op.create_index("ix_api_outbox_recipient", "api_outbox", ["recipient"])


def downgrade() -> None:
    for table in (
        "api_outbox", "api_known_addresses", "api_login_throttle", "api_password_resets",
        "api_recovery_codes", "api_one_time_codes", "api_step_ups", "api_tokens", "api_sessions",
    ):
        op.drop_table(table)
