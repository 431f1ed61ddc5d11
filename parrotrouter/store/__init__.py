"""Durable state: accounts, API keys, credit leases and the usage ledger (SQLAlchemy 2 Core, async).

SQLite in the data directory by default (WAL); PostgreSQL with `database_url`. Schema changes are
ordered, named Alembic migrations, applied automatically on start.
"""
