"""Indexes behind the member search, one per backend, kept outside the ORM metadata.

`search_text LIKE '%word%'` cannot use a B-tree, so at 100,000 members every search (and its
count) would read the whole table. SQLite gets an FTS5 trigram table over `member.search_text`
(external content, kept in step by triggers); PostgreSQL gets a pg_trgm GIN index. Both serve
substring matches in any script. They are created by the migrations and, for tests that build
the schema with create_all, by the `after_create` hook below; autogenerate ignores them
(`include_name`).
"""
from __future__ import annotations

from sqlalchemy import event, text

SQLITE_OBJECTS = {"member_search", "member_search_data", "member_search_idx", "member_search_content",
                  "member_search_docsize", "member_search_config"}
POSTGRES_OBJECTS = {"ix_member_search_trgm"}

SQLITE_CREATE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS member_search USING fts5("
    "search_text, content='member', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS member_search_ai AFTER INSERT ON member BEGIN "
    "INSERT INTO member_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS member_search_ad AFTER DELETE ON member BEGIN "
    "INSERT INTO member_search(member_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS member_search_au AFTER UPDATE OF search_text ON member BEGIN "
    "INSERT INTO member_search(member_search, rowid, search_text) VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO member_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO member_search(member_search) VALUES ('rebuild')",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS member_search_ai",
    "DROP TRIGGER IF EXISTS member_search_ad",
    "DROP TRIGGER IF EXISTS member_search_au",
    "DROP TABLE IF EXISTS member_search",
]
POSTGRES_CREATE = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS ix_member_search_trgm ON member USING gin (search_text gin_trgm_ops)",
]
POSTGRES_DROP = ["DROP INDEX IF EXISTS ix_member_search_trgm"]


def create(conn) -> None:
    """Create the search index for the connection's backend (migrations and create_all call it)."""
    for statement in {"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE}.get(conn.dialect.name, []):
        conn.execute(text(statement))


def drop(conn) -> None:
    for statement in {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}.get(conn.dialect.name, []):
        conn.execute(text(statement))


def include_name(name, type_, parent_names) -> bool:
    """Alembic autogenerate: the search objects are ours, not missing from the models."""
    if type_ == "table" and name and (name in SQLITE_OBJECTS):
        return False
    if type_ == "index" and name in POSTGRES_OBJECTS:
        return False
    return True


def install(member_table) -> None:
    event.listen(member_table, "after_create", lambda target, conn, **kw: create(conn))
    event.listen(member_table, "before_drop", lambda target, conn, **kw: drop(conn))
