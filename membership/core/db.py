"""Database behaviour per backend."""
from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

_installed = False


def conflict_insert(dialect: str):
    """The `insert` of the database named `dialect` that has ON CONFLICT (PostgreSQL, SQLite),
    or None for another database (not supported; callers that can, fall back)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
        return insert
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        return insert
    return None  # pragma: no cover - other databases are not supported


def install_sqlite_pragmas() -> None:
    """SQLite: foreign keys on, WAL, a busy timeout, and BEGIN IMMEDIATE.

    pysqlite's own BEGIN is deferred: a transaction that reads and then writes fails at once
    with "database is locked" when another connection wrote meanwhile. Taking the write lock
    at BEGIN makes writers queue (up to the busy timeout) instead.
    """
    global _installed
    if _installed:
        return
    _installed = True

    @event.listens_for(Engine, "connect")
    def _on_connect(dbapi_connection, connection_record):
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _on_begin(conn):
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
