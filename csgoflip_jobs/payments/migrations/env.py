"""Alembic environment: runs the migrations against ``sqlalchemy.url``."""

from __future__ import annotations

from alembic import context

from csgoflip_jobs.payments.database import make_engine
from csgoflip_jobs.payments.models import Base
from csgoflip_jobs.settings import get_settings

target_metadata = Base.metadata


def run_migrations() -> None:
    """Run online (with a connection); offline SQL generation is not needed here."""
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_dsn
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
