"""Balances are integers on SQLite too: a write of any other type is refused.

SQLite stores whatever a column is given: an integer sum past BIGINT's maximum turns
into a REAL (1.8446744073709552e+19), which no later check of the balance catches.
PostgreSQL's BIGINT refuses such a value itself. SQLite cannot add a CHECK to an
existing table without copying it (and ``users`` is referenced by every other
table), so two triggers refuse the write instead; the service refuses an overflowing
change before it is written (``ledger.change_balance``), this is the last guard.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_EVENTS = ("INSERT", "UPDATE")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in _EVENTS:
        op.execute(
            f"CREATE TRIGGER balance_is_integer_on_{event.lower()} BEFORE {event} ON users "
            "WHEN typeof(NEW.balance_minor) != 'integer' "
            "BEGIN SELECT RAISE(ABORT, 'balance_minor must be an integer'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for event in _EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS balance_is_integer_on_{event.lower()}")
