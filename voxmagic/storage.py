"""The SQLite file behind history and the cache: every request is written the moment it completes.

One row per request (also cache hits and failures), committed on its own, so a kernel that dies
— even by SIGKILL — keeps every finished row, and a rerun finds them in the cache. The file lives
in the user cache dir (``platformdirs``), or where ``VOXMAGIC_HISTORY`` points; WAL mode lets a
notebook read history while a batch writes. The schema grows by named, append-only migrations
recorded in the file itself (after Simon Willison's ``llm``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .results import local_times

if TYPE_CHECKING:
    import pandas as pd

    from .requests import ChatRequest
    from .results import Response
    from .transcriptions import TranscriptionRequest

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


def default_path() -> Path:
    if os.environ.get("VOXMAGIC_HISTORY"):
        return Path(os.environ["VOXMAGIC_HISTORY"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxmagic")) / "history.db"


class Store:
    """History and cache in one SQLite file, through one open connection per thread."""

    def __init__(self, path: str | Path | None = None):
        self._path = Path(path) if path else None
        self._migrated: set[Path] = set()
        self._lock = threading.Lock()
        self._local = threading.local()  # one open connection per thread, to the current file

    @property
    def path(self) -> Path:
        return self._path or default_path()

    def use(self, path: str | Path | None) -> None:
        """Point at another file (None: back to the default)."""
        self._path = Path(path).expanduser() if path else None

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every statement is its own transaction)."""
        path = self.path
        cached = getattr(self._local, "db", None)
        if cached is not None and self._local.path == path:
            return cached
        if cached is not None:
            cached.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if path not in self._migrated:
            with self._lock:
                self._migrate(db)
                self._migrated.add(path)
        self._local.db, self._local.path = db, path
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied REAL)")
            done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                if fn.__name__ not in done:
                    fn(db)
                    db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _write(self, sql: str, values: tuple) -> None:
        self.connect().execute(sql, values)

    # -- requests ----------------------------------------------------------------------------

    def record(self, request: ChatRequest | TranscriptionRequest, base_url: str, *, response: Response | None = None,
               error: BaseException | None = None, cache_key: str | None = None) -> None:
        """One row for a finished request (answered, cached or failed); committed at once."""
        body = request.body(elide_audio=True)
        params = {k: v for k, v in body.items() if k not in ("messages", "model")}
        row: dict[str, Any] = dict(
            time=time.time(), model=request.model, base_url=base_url, params=json.dumps(params),
            prompt=request.question, sources=json.dumps([a.label for a in request.audio]),
            audio_sha256=",".join(a.sha256 for a in request.audio),
            audio_format=",".join(sorted({a.format for a in request.audio})),
            audio_seconds=request.audio_seconds, cache_key=cache_key)
        if response is not None:
            u = response.usage
            row.update(
                cached=int(response.cached), text=response.text, finish_reason=response.finish_reason,
                tool_calls=json.dumps([vars(c) for c in response.tool_calls]) if response.tool_calls else None,
                provider=response.provider, prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens, audio_tokens=u.audio_tokens,
                cost_usd=response.cost_usd, cost_source=response.cost_source,
                latency_s=response.latency_s, ttft_s=response.ttft_s, attempts=response.attempts,
                generation_id=response.generation_id,
                segments=json.dumps(response.segments) if response.segments else None)
        if error is not None:
            row.update(error=str(error) or type(error).__name__, error_type=type(error).__name__,
                       attempts=getattr(error, "attempts", None),
                       generation_id=getattr(error, "generation_id", None),
                       cost_source="unknown" if getattr(error, "generation_id", None) else None)
        names = ", ".join(row)
        self._write(f"INSERT INTO requests ({names}) VALUES ({', '.join('?' * len(row))})",
                    tuple(row.values()))

    def cached(self, cache_key: str) -> Response | None:
        """The latest complete answer stored under ``cache_key`` (never a failure or a cut answer),
        as a Response marked ``cached`` that costs $0."""
        from .results import Response, ToolCall, Usage

        row = self.connect().execute(
            "SELECT * FROM requests WHERE cache_key = ? AND error IS NULL AND cached = 0 "
            "AND (finish_reason IS NULL OR finish_reason NOT IN ('error', 'length')) "
            "ORDER BY id DESC LIMIT 1", (cache_key,)).fetchone()
        if row is None:
            return None
        calls = [ToolCall(**c) for c in json.loads(row["tool_calls"])] if row["tool_calls"] else []
        usage = Usage(prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
                      audio_tokens=row["audio_tokens"], cost=0.0)
        return Response(text=row["text"] or "", model=row["model"], finish_reason=row["finish_reason"],
                        usage=usage, cost_usd=0.0, cost_source="cached",
                        audio_seconds=row["audio_seconds"] or 0.0, latency_s=0.0,
                        generation_id=row["generation_id"], provider=row["provider"], tool_calls=calls,
                        cached=True, segments=json.loads(row["segments"]) if row["segments"] else [])

    # -- sources -----------------------------------------------------------------------------

    def remember_source(self, fingerprint: str, chunks: list[dict]) -> None:
        self._write("INSERT OR REPLACE INTO sources VALUES (?, ?, ?)",
                    (fingerprint, json.dumps(chunks), time.time()))

    def source(self, fingerprint: str) -> list[dict] | None:
        row = self.connect().execute("SELECT chunks FROM sources WHERE fingerprint = ?",
                                     (fingerprint,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- reading -----------------------------------------------------------------------------

    def history(self, last: int | None = None, since: float | None = None) -> pd.DataFrame:
        """Requests as a DataFrame, oldest first; ``last`` keeps the newest N, ``since`` a start time."""
        import pandas as pd

        sql, args = "SELECT * FROM requests", []
        if since is not None:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY id DESC"
        if last is not None:
            sql += " LIMIT ?"
            args.append(int(last))
        df = pd.read_sql_query(sql, self.connect(), params=args)
        df = df.iloc[::-1].reset_index(drop=True)
        df["time"] = local_times(df["time"])
        df["cached"] = df["cached"].astype(bool)
        return df
