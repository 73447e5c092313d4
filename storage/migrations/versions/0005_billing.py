"""billing tables: portfolio, options, price lists, orders, payments, invoices,
reminders, the registry work queue and the e-mail outbox.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('billing_counters',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_billing_counters'))
    )
    counters = sa.table("billing_counters", sa.column("name", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(counters, [{"name": "order", "value": 0}, {"name": "invoice", "value": 0}])
    op.create_table('billing_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('domain_name', sa.String(length=255), nullable=True),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('status', sa.Enum('pending', 'sent', 'failed', name='outboxstatus', native_enum=False, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_outbox'))
    )
    op.create_index(op.f('ix_billing_outbox_account_id'), 'billing_outbox', ['account_id'], unique=False)
    op.create_index('ix_billing_outbox_status', 'billing_outbox', ['status', 'id'], unique=False)
    op.create_table('billing_webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=128), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_webhook_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_billing_webhook_events_event_id'))
    )
    op.create_table('billing_contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('organisation', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('postal_address', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_billing_contacts_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_contacts'))
    )
    op.create_index(op.f('ix_billing_contacts_account_id'), 'billing_contacts', ['account_id'], unique=False)
    op.create_table('billing_orders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('status', sa.Enum('pending_payment', 'paid', 'in_progress', 'done', 'cancelled', name='orderstatus', native_enum=False, length=32), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('subtotal_cents', sa.BigInteger(), nullable=False),
    sa.Column('vat_cents', sa.BigInteger(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('vat_rate_bp', sa.Integer(), nullable=False),
    sa.Column('vat_country', sa.String(length=2), nullable=False),
    sa.Column('vat_number', sa.String(length=32), nullable=True),
    sa.Column('reverse_charge', sa.Boolean(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_billing_orders_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_orders')),
    sa.UniqueConstraint('number', name=op.f('uq_billing_orders_number'))
    )
    op.create_index(op.f('ix_billing_orders_account_id'), 'billing_orders', ['account_id'], unique=False)
    op.create_index(op.f('ix_billing_orders_status'), 'billing_orders', ['status'], unique=False)
    op.create_table('billing_prices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('extension', sa.String(length=63), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('cents', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_billing_prices_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_prices'))
    )
    op.create_index('uq_billing_prices_account', 'billing_prices', ['account_id', 'extension', 'product'], unique=True, sqlite_where=sa.text('account_id IS NOT NULL'), postgresql_where=sa.text('account_id IS NOT NULL'))
    op.create_index('uq_billing_prices_default', 'billing_prices', ['extension', 'product'], unique=True, sqlite_where=sa.text('account_id IS NULL'), postgresql_where=sa.text('account_id IS NULL'))
    op.create_table('billing_domains',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('extension', sa.String(length=63), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('business_unit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('plan', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('active', 'expired', 'suspended', 'redemption', 'deleted', name='domainstatus', native_enum=False, length=32), nullable=False),
    sa.Column('status_since', sa.Date(), nullable=True),
    sa.Column('owner_contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('admin_contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('billing_contact_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('locked', sa.Boolean(), nullable=False),
    sa.Column('transfer_code_enc', sa.String(length=512), nullable=True),
    sa.Column('nameservers', sa.JSON(), nullable=False),
    sa.Column('cancel_at_term', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deleted_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_billing_domains_account_id_accounts')),
    sa.ForeignKeyConstraint(['admin_contact_id'], ['billing_contacts.id'], name=op.f('fk_billing_domains_admin_contact_id_billing_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['billing_contact_id'], ['billing_contacts.id'], name=op.f('fk_billing_domains_billing_contact_id_billing_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['business_unit_id'], ['business_units.id'], name=op.f('fk_billing_domains_business_unit_id_business_units'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_contact_id'], ['billing_contacts.id'], name=op.f('fk_billing_domains_owner_contact_id_billing_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_domains'))
    )
    op.create_index(op.f('ix_billing_domains_account_id'), 'billing_domains', ['account_id'], unique=False)
    op.create_index('ix_billing_domains_expires_on', 'billing_domains', ['expires_on'], unique=False)
    op.create_index('uq_billing_domains_live_name', 'billing_domains', ['name'], unique=True, sqlite_where=sa.text("status != 'deleted'"), postgresql_where=sa.text("status != 'deleted'"))
    op.create_table('billing_invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Enum('invoice', 'credit_note', name='invoicekind', native_enum=False, length=32), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('credited_invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('seller', sa.JSON(), nullable=False),
    sa.Column('buyer', sa.JSON(), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('subtotal_cents', sa.BigInteger(), nullable=False),
    sa.Column('vat_cents', sa.BigInteger(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('vat_rate_bp', sa.Integer(), nullable=False),
    sa.Column('reverse_charge', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['credited_invoice_id'], ['billing_invoices.id'], name=op.f('fk_billing_invoices_credited_invoice_id_billing_invoices')),
    sa.ForeignKeyConstraint(['order_id'], ['billing_orders.id'], name=op.f('fk_billing_invoices_order_id_billing_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_invoices')),
    sa.UniqueConstraint('number', name=op.f('uq_billing_invoices_number'))
    )
    op.create_index(op.f('ix_billing_invoices_account_id'), 'billing_invoices', ['account_id'], unique=False)
    op.create_index(op.f('ix_billing_invoices_order_id'), 'billing_invoices', ['order_id'], unique=False)
    op.create_table('billing_order_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('domain_name', sa.String(length=255), nullable=False),
    sa.Column('extension', sa.String(length=63), nullable=False),
    sa.Column('years', sa.Integer(), nullable=False),
    sa.Column('unit_cents', sa.BigInteger(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['billing_orders.id'], name=op.f('fk_billing_order_lines_order_id_billing_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_order_lines'))
    )
    op.create_index(op.f('ix_billing_order_lines_order_id'), 'billing_order_lines', ['order_id'], unique=False)
    op.create_table('billing_payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('method', sa.Enum('card', 'cheque', 'transfer', 'direct_debit', name='paymentmethod', native_enum=False, length=32), nullable=False),
    sa.Column('status', sa.Enum('pending', 'succeeded', 'failed', 'refund_due', name='paymentstatus', native_enum=False, length=32), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('recorded_by', sa.String(length=200), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['billing_orders.id'], name=op.f('fk_billing_payments_order_id_billing_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_payments')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_billing_payments_idempotency_key')),
    sa.UniqueConstraint('method', 'reference', name=op.f('uq_billing_payments_method'))
    )
    op.create_index(op.f('ix_billing_payments_order_id'), 'billing_payments', ['order_id'], unique=False)
    op.create_index('uq_billing_payments_paid_order', 'billing_payments', ['order_id'], unique=True, sqlite_where=sa.text("status = 'succeeded'"), postgresql_where=sa.text("status = 'succeeded'"))
    op.create_table('billing_work_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('domain_name', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=True),
    sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('open', 'done', 'cancelled', name='workstatus', native_enum=False, length=32), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_by', sa.String(length=200), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['billing_orders.id'], name=op.f('fk_billing_work_items_order_id_billing_orders'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_work_items'))
    )
    op.create_index('ix_billing_work_items_status', 'billing_work_items', ['status', 'id'], unique=False)
    op.create_table('billing_options',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('status', sa.Enum('active', 'expired', 'cancelled', name='optionstatus', native_enum=False, length=32), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('cancel_at_term', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['billing_domains.id'], name=op.f('fk_billing_options_domain_id_billing_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_options')),
    sa.UniqueConstraint('domain_id', 'product', name=op.f('uq_billing_options_domain_id'))
    )
    op.create_index(op.f('ix_billing_options_domain_id'), 'billing_options', ['domain_id'], unique=False)
    op.create_table('billing_reminders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain_name', sa.String(length=255), nullable=False),
    sa.Column('reminder', sa.Integer(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('sent', 'skipped', name='reminderstatus', native_enum=False, length=32), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['billing_domains.id'], name=op.f('fk_billing_reminders_domain_id_billing_domains'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_reminders')),
    sa.UniqueConstraint('domain_id', 'reminder', 'expires_on', name=op.f('uq_billing_reminders_domain_id'))
    )
    op.create_table('billing_option_reminders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('option_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('domain_name', sa.String(length=255), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('reminder', sa.Integer(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('sent', 'skipped', name='reminderstatus', native_enum=False, length=32), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('sent_on', sa.Date(), nullable=False),
    sa.Column('recipients', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['option_id'], ['billing_options.id'], name=op.f('fk_billing_option_reminders_option_id_billing_options'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_billing_option_reminders')),
    sa.UniqueConstraint('option_id', 'reminder', 'expires_on', name=op.f('uq_billing_option_reminders_option_id'))
    )


def downgrade() -> None:
    op.drop_table('billing_option_reminders')
    op.drop_table('billing_reminders')
    op.drop_table('billing_options')
    op.drop_table('billing_work_items')
    op.drop_table('billing_payments')
    op.drop_table('billing_order_lines')
    op.drop_table('billing_invoices')
    op.drop_table('billing_domains')
    op.drop_table('billing_prices')
    op.drop_table('billing_orders')
    op.drop_table('billing_contacts')
    op.drop_table('billing_webhook_events')
    op.drop_table('billing_outbox')
    op.drop_table('billing_counters')
