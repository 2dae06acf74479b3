"""The history file's schema, grown by named, append-only migrations (after Simon Willison's
``llm``): each is a function run once per file, in order, and recorded in the file itself, so any
older file is brought up to date when opened and a new column never needs a rewrite."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable

MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = []


def migration(fn: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_requests(db: sqlite3.Connection) -> None:
    db.execute("""
        CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            time REAL NOT NULL,
            model TEXT, base_url TEXT, params TEXT, prompt TEXT, sources TEXT,
            audio_sha256 TEXT, audio_format TEXT, audio_seconds REAL,
            cache_key TEXT, cached INTEGER NOT NULL DEFAULT 0,
            text TEXT, tool_calls TEXT, finish_reason TEXT, provider TEXT,
            prompt_tokens INTEGER, completion_tokens INTEGER, audio_tokens INTEGER,
            cost_usd REAL, cost_source TEXT, latency_s REAL, ttft_s REAL, attempts INTEGER,
            generation_id TEXT, error TEXT, error_type TEXT
        )""")
    db.execute("CREATE INDEX requests_cache_key ON requests (cache_key)")
    db.execute("CREATE INDEX requests_time ON requests (time)")


@migration
def m002_sources(db: sqlite3.Connection) -> None:
    """What a source became when prepared, so a rerun can find its cached answers without decoding."""
    db.execute("""
        CREATE TABLE sources (
            fingerprint TEXT PRIMARY KEY,
            chunks TEXT NOT NULL,
            time REAL NOT NULL
        )""")


@migration
def m003_segments(db: sqlite3.Connection) -> None:
    """Timed pieces of a transcript (from a transcriptions endpoint), so a cached answer keeps them."""
    db.execute("ALTER TABLE requests ADD COLUMN segments TEXT")


@migration
def m004_outcome(db: sqlite3.Connection) -> None:
    """What became of each request: answered, cached, failed, cancelled — or abandoned: a retried
    attempt the server had started on, which the provider may bill although nobody got its answer."""
    db.execute("ALTER TABLE requests ADD COLUMN outcome TEXT")


@functools.cache
def columns() -> tuple[str, ...]:
    """The columns of ``requests`` after every migration, so a history that cannot be read is still
    an empty table of the usual shape (worked out once, on a database in memory)."""
    db = sqlite3.connect(":memory:")
    try:
        for fn in MIGRATIONS:
            fn(db)
        return tuple(row[1] for row in db.execute("PRAGMA table_info(requests)"))
    finally:
        db.close()
