"""mail tables: mail service per domain, aliases, targets, their change feed, the queue.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    op.create_table(
        "mail_services",
        sa.Column("id", _ID, nullable=False),
        sa.Column("zone_id", _ID, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("redirect_pack", sa.Boolean(), nullable=False),
        sa.Column("aliases_sensitive", sa.Boolean(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"],
                                name=op.f("fk_mail_services_zone_id_zones"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_services")),
        sa.UniqueConstraint("zone_id", name=op.f("uq_mail_services_zone_id")),
    )
    op.create_table(
        "mail_aliases",
        sa.Column("id", _ID, nullable=False),
        sa.Column("zone_id", _ID, nullable=False),
        sa.Column("local_part", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"],
                                name=op.f("fk_mail_aliases_zone_id_zones"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_aliases")),
        sa.UniqueConstraint("zone_id", "local_part", name=op.f("uq_mail_aliases_zone_id")),
    )
    with op.batch_alter_table("mail_aliases") as batch:
        batch.create_index(batch.f("ix_mail_aliases_zone_id"), ["zone_id"], unique=False)
    op.create_table(
        "mail_alias_targets",
        sa.Column("id", _ID, nullable=False),
        sa.Column("alias_id", _ID, nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("state", _enum("targetstate", "pending", "verified"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_sent_at", _TS, nullable=True),
        sa.Column("verified_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(["alias_id"], ["mail_aliases.id"],
                                name=op.f("fk_mail_alias_targets_alias_id_mail_aliases"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_alias_targets")),
        sa.UniqueConstraint("alias_id", "address", name=op.f("uq_mail_alias_targets_alias_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mail_alias_targets_token_hash")),
    )
    with op.batch_alter_table("mail_alias_targets") as batch:
        batch.create_index(batch.f("ix_mail_alias_targets_alias_id"), ["alias_id"], unique=False)
    op.create_table(
        "mail_changes",
        sa.Column("id", _ID, nullable=False),
        sa.Column("zone_name", sa.String(length=255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_changes")),
    )
    with op.batch_alter_table("mail_changes") as batch:
        batch.create_index(batch.f("ix_mail_changes_created_at"), ["created_at"], unique=False)
    op.create_table(
        "mail_messages",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", _enum("messagekind", "forward", "bounce", "dsn", "verification"),
                  nullable=False),
        sa.Column("envelope_sender", sa.String(length=320), nullable=False),
        sa.Column("original_sender", sa.String(length=320), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("client_helo", sa.String(length=255), nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("spool_path", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_messages")),
    )
    with op.batch_alter_table("mail_messages") as batch:
        batch.create_index(batch.f("ix_mail_messages_received_at"), ["received_at"], unique=False)
    op.create_table(
        "mail_deliveries",
        sa.Column("id", _ID, nullable=False),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("state", _enum("deliverystate", "queued", "deferred", "delivered", "bounced"),
                  nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TS, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("locked_by", sa.String(length=64), nullable=True),
        sa.Column("locked_until", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["mail_messages.id"],
                                name=op.f("fk_mail_deliveries_message_id_mail_messages"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_deliveries")),
    )
    with op.batch_alter_table("mail_deliveries") as batch:
        batch.create_index("ix_mail_deliveries_due", ["state", "next_attempt_at"], unique=False)
        batch.create_index(batch.f("ix_mail_deliveries_message_id"), ["message_id"],
                           unique=False)


def downgrade() -> None:
    op.drop_table("mail_deliveries")
    op.drop_table("mail_messages")
    op.drop_table("mail_changes")
    op.drop_table("mail_alias_targets")
    op.drop_table("mail_aliases")
    op.drop_table("mail_services")
