"""Withdrawals: 'processing' (a payout began) and 'cancelled' (refunded before it began).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BEFORE = "status IN ('pending', 'completed', 'failed', 'uncertain')"
_AFTER = "status IN ('pending', 'processing', 'completed', 'failed', 'uncertain', 'cancelled')"


def _status_check(condition: str) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode copies the table (rows
    # and indexes kept); PostgreSQL alters it in place.
    with op.batch_alter_table("withdrawals") as batch:
        batch.drop_constraint("withdrawal_status", type_="check")
        batch.create_check_constraint("withdrawal_status", condition)


def upgrade() -> None:
    _status_check(_AFTER)


def downgrade() -> None:
    _status_check(_BEFORE)
