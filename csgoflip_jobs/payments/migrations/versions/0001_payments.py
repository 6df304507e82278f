"""Payments ledger: users, deposits, withdrawals, append-only ledger, sandbox payouts.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_NOW = sa.text("CURRENT_TIMESTAMP")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("balance_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("fence_token", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("balance_minor >= 0", name="balance_not_negative"),
    )
    op.create_table(
        "deposits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("amount_minor > 0", name="deposit_positive"),
        sa.CheckConstraint("status IN ('pending', 'confirmed')", name="deposit_status"),
    )
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending", index=True),
        sa.Column("fence_token", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("payout_reference", sa.String(128)),
        sa.Column("failure_reason", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.CheckConstraint("amount_minor > 0", name="withdrawal_positive"),
        sa.CheckConstraint(
            "status IN ('pending', 'completed', 'failed', 'uncertain')", name="withdrawal_status"
        ),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
        sa.UniqueConstraint("kind", "reference", name="ledger_once_per_reference"),
        sa.CheckConstraint("amount_minor <> 0", name="ledger_non_zero"),
        sa.CheckConstraint("kind IN ('deposit', 'withdrawal', 'refund')", name="ledger_kind"),
    )
    op.create_table(
        "sandbox_payouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(128), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=_NOW),
    )
    op.create_table(
        "sandbox_plans",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("permanent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("delay_ms", sa.Integer, nullable=False, server_default="0"),
    )
    _make_ledger_append_only()


def _make_ledger_append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'ledger_entries is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    for table in (
        "sandbox_plans",
        "sandbox_payouts",
        "ledger_entries",
        "withdrawals",
        "deposits",
        "users",
    ):
        op.drop_table(table)
