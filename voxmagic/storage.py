"""The SQLite file behind history and the cache: every request is written the moment it completes.

One row per request (also cache hits and failures), committed on its own, so a kernel that dies
— even by SIGKILL — keeps every finished row, and a rerun finds them in the cache. The file lives
in the user cache dir (``platformdirs``), or where ``VOXMAGIC_HISTORY`` points; WAL mode lets a
notebook read history while a batch writes. The schema grows by named, append-only migrations
recorded in the file itself (after Simon Willison's ``llm``).

The file is a convenience, never a single point of failure: the work always runs. No method of
:class:`Store` raises a sqlite3 or OS error. A damaged file is moved aside to
``<name>.corrupt-<YYYYmmdd-HHMMSS>`` and a fresh one started; a file that cannot be written, or
stays locked by another process for :data:`LOCK_WAIT_S`, turns history and cache off for the
session (``Store.problem`` says why) until another file is chosen. Each problem is told once, as
one line through :func:`warn`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .frames import as_table, local_times, tidy
from .migrations import MIGRATIONS, columns

if TYPE_CHECKING:
    import pandas as pd

    from .chat import ChatRequest
    from .results import Response
    from .transcriptions import TranscriptionRequest

T = TypeVar("T")

#: How long a write waits for another connection's lock (SQLite's busy timeout) before history and
#: cache are turned off for the session: long enough for another kernel's brief writes, short
#: enough that a file held open by a stuck process costs one pause, not one per request.
LOCK_WAIT_S = 5.0

#: What the user can do about a file that cannot be used; ends every "off" warning.
FIX = "set VOXMAGIC_HISTORY or %config VoxtralMagics.history_path to another file"

#: SQLite's words for a file whose content is damaged (as opposed to one that cannot be reached).
DAMAGED = ("file is not a database", "database disk image is malformed", "malformed database schema")


def warn(message: str) -> None:
    """The one way this module tells the user something: a single line on stderr. It is looked up
    at each call, so tests capture it and an application can reroute it by replacing it."""
    print(message, file=sys.stderr, flush=True)


def default_path() -> Path:
    if os.environ.get("VOXMAGIC_HISTORY"):
        return Path(os.environ["VOXMAGIC_HISTORY"]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("voxmagic")) / "history.db"


def diagnose(path: Path, exc: BaseException) -> tuple[bool, str]:
    """(damaged?, what happened) for an error from ``path``, in words that follow the file's name:
    a damaged file can be moved aside; anything else means the file cannot be used at all."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and any(s in text for s in DAMAGED):
        return True, f"is damaged ({text})"
    if "database is locked" in text or "database table is locked" in text:
        return False, f"is locked by another process (waited {LOCK_WAIT_S:g} s)"
    with contextlib.suppress(OSError):
        if path.is_dir():
            return False, "is a folder, not a file"
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return False, f"cannot be created: {blocker} is a file, not a folder"
        if "readonly" in text or (path.exists() and not os.access(path, os.W_OK)):
            return False, f"is read-only ({text})"
        if path.parent.is_dir() and not os.access(path.parent, os.W_OK):
            return False, f"cannot be written: no permission to write in {path.parent} ({text})"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        return False, f"cannot be created ({exc.strerror or exc}{where})"
    if "unable to open" in text:
        return False, f"cannot be opened or created ({text})"
    return False, f"cannot be used ({text})"


class Store:
    """History and cache in one SQLite file, through one open connection per thread.

    Every method works whatever state the file is in: see the module docstring."""

    def __init__(self, path: str | Path | None = None):
        self._path = Path(path) if path else None
        self._migrated: set[Path] = set()
        self._off: dict[Path, str] = {}  # file -> the warning that turned history and cache off
        self._told: set[str] = set()  # warnings already shown: each once per session
        self._generation = 0  # moves on when a file is set aside, so every thread reopens
        self._lock = threading.Lock()
        self._local = threading.local()  # one open connection per thread, to the current file

    @property
    def path(self) -> Path:
        return self._path or default_path()

    @property
    def problem(self) -> str | None:
        """Why history and cache are off for the current file (the warning line), or None while
        they work — for the notebook layer to show."""
        return self._off.get(self.path)

    def use(self, path: str | Path | None) -> None:
        """Point at another file (None: back to the default). Choosing a file is also the way to
        try one again that failed earlier in the session."""
        self._path = Path(path).expanduser() if path else None
        if self._off.pop(self.path, None) is not None:
            self._told = {line for line in self._told if str(self.path) not in line}

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (autocommit: every statement is its own transaction).
        Raises what SQLite or the file system raise; the methods below never do."""
        path, local = self.path, self._local
        db = getattr(local, "db", None)
        if db is not None and local.path == path and local.generation == self._generation:
            return db
        self._close_local()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if path not in self._migrated:
                with self._lock:
                    self._migrate(db)
                    self._migrated.add(path)
        except BaseException:
            db.close()
            raise
        local.db, local.path, local.generation = db, path, self._generation
        return db

    def _close_local(self) -> None:
        db, self._local.db = getattr(self._local, "db", None), None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

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
            if db.in_transaction:  # SQLite rolls back by itself after some errors
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    # -- when the file fails -------------------------------------------------------------------

    def _run(self, work: Callable[[sqlite3.Connection], T], otherwise: T) -> T:
        """``work`` on this thread's connection, or ``otherwise`` when the file fails. A damaged
        file is set aside and the work tried once more on a fresh one; any other failure (or a
        fresh file that fails too) turns history and cache off for this file."""
        path = self.path
        for attempt in (1, 2):
            if path in self._off:
                return otherwise
            generation = self._generation
            try:
                return work(self.connect())
            except (sqlite3.Error, OSError) as exc:
                self._close_local()
                damaged, what = diagnose(path, exc)
                if damaged and attempt == 1:
                    failed = self._set_aside(path, generation, what)
                    if failed is None:
                        continue
                    what = f"{what} and could not be moved aside ({failed})"
                self._turn_off(path, what)
        return otherwise

    def _set_aside(self, path: Path, generation: int, what: str) -> str | None:
        """Move a damaged file, with its -wal and -shm, to ``<name>.corrupt-<time>`` so that the
        next connection starts a fresh one; None when done, else why it could not be moved."""
        with self._lock:
            if generation != self._generation:
                return None  # another thread set it aside while this one was failing
            name = f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
            target, n = path.with_name(name), 1
            while target.exists():  # a second damaged file within the same second
                n += 1
                target = path.with_name(f"{name}-{n}")
            try:
                os.replace(path, target)
                for suffix in ("-wal", "-shm"):
                    if path.with_name(path.name + suffix).exists():
                        os.replace(path.with_name(path.name + suffix), target.with_name(target.name + suffix))
            except OSError as exc:
                return exc.strerror or str(exc)
            self._generation += 1
            self._migrated.discard(path)
        self._tell(f"voxmagic: {path} {what}; moved it to {target} and started a fresh history and cache")
        return None

    def _turn_off(self, path: Path, what: str) -> None:
        line = f"voxmagic: history and cache are off for this session: {path} {what}; {FIX}"
        self._off[path] = line
        self._tell(line)

    def _tell(self, line: str) -> None:
        """Each warning once per session, however many threads or requests run into it."""
        with self._lock:
            if line in self._told:
                return
            self._told.add(line)
        warn(line)

    # -- requests ----------------------------------------------------------------------------

    def record(
        self,
        request: ChatRequest | TranscriptionRequest,
        base_url: str,
        *,
        response: Response | None = None,
        error: BaseException | None = None,
        cache_key: str | None = None,
        abandoned: bool = False,
        text: str | None = None,
    ) -> None:
        """One row for a finished request (answered, cached, failed, cancelled) or an attempt
        abandoned for a retry after the server had started; committed at once. ``text``: what a
        failed or cancelled request had streamed (never a cache hit: the row has an error)."""
        if self.problem is not None:
            return
        row = _request_columns(request, base_url, cache_key)
        if response is not None:
            row.update(_response_columns(response))
        if error is not None:
            row.update(_error_columns(error, abandoned), text=text)
        sql = f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
        self._run(lambda db: db.execute(sql, tuple(row.values())), None)

    def cached(self, cache_key: str) -> Response | None:
        """The latest complete answer stored under ``cache_key`` (never a failure or a cut answer),
        as a Response marked ``cached`` that costs $0."""
        from .results import Response, ToolCall, Usage

        row = self._run(
            lambda db: db.execute(
                "SELECT * FROM requests WHERE cache_key = ? AND error IS NULL AND cached = 0 "
                "AND (finish_reason IS NULL OR finish_reason NOT IN ('error', 'length')) "
                "ORDER BY id DESC LIMIT 1",
                (cache_key,),
            ).fetchone(),
            None,
        )
        if row is None:
            return None
        calls = [ToolCall(**c) for c in json.loads(row["tool_calls"])] if row["tool_calls"] else []
        usage = Usage(
            prompt_tokens=row["prompt_tokens"],
            completion_tokens=row["completion_tokens"],
            audio_tokens=row["audio_tokens"],
            cost=0.0,
        )
        return Response(
            text=row["text"] or "",
            model=row["model"],
            finish_reason=row["finish_reason"],
            usage=usage,
            cost_usd=0.0,
            cost_source="cached",
            audio_seconds=row["audio_seconds"] or 0.0,
            latency_s=0.0,
            generation_id=row["generation_id"],
            provider=row["provider"],
            tool_calls=calls,
            cached=True,
            segments=json.loads(row["segments"]) if row["segments"] else [],
        )

    # -- sources -----------------------------------------------------------------------------

    def remember_source(self, fingerprint: str, chunks: list[dict]) -> None:
        values = (fingerprint, json.dumps(chunks), time.time())
        self._run(lambda db: db.execute("INSERT OR REPLACE INTO sources VALUES (?, ?, ?)", values), None)

    def source(self, fingerprint: str) -> list[dict] | None:
        row = self._run(
            lambda db: db.execute("SELECT chunks FROM sources WHERE fingerprint = ?", (fingerprint,)).fetchone(), None
        )
        return json.loads(row[0]) if row else None

    # -- reading -----------------------------------------------------------------------------

    def history(self, last: int | None = None, since: float | None = None) -> pd.DataFrame:
        """Requests as a DataFrame (an :func:`~voxmagic.frames.as_table` table), oldest first, every
        column of the file in its order; ``last`` keeps the newest N, ``since`` a start time. ``time``
        is local time, counts are nullable Int64, ``cached`` a bool, text columns None when empty."""
        import pandas as pd

        sql, args = "SELECT * FROM requests", []
        if since is not None:
            sql += " WHERE time >= ?"
            args.append(since)
        sql += " ORDER BY id DESC"
        if last is not None:
            sql += " LIMIT ?"
            args.append(int(last))
        empty: tuple[list[str], list[tuple]] = (list(columns()), [])
        names, rows = self._run(lambda db: _fetch(db, sql, args), empty)
        df = pd.DataFrame.from_records(rows, columns=names, coerce_float=True)
        df = tidy(df.iloc[::-1].reset_index(drop=True), [n for n in names if n not in ("id", "time")])
        df["time"] = local_times(df["time"])
        return as_table(df)


def _fetch(db: sqlite3.Connection, sql: str, args: list) -> tuple[list[str], list[tuple]]:
    """Column names and rows, read in full while the connection is known to work."""
    cursor = db.execute(sql, args)
    return [d[0] for d in cursor.description], [tuple(r) for r in cursor.fetchall()]


def _request_columns(request: ChatRequest | TranscriptionRequest, base_url: str, cache_key: str | None) -> dict:
    """What was asked: never the audio (only its digest) and never the key."""
    body = request.body(elide_audio=True)
    params = {k: v for k, v in body.items() if k not in ("messages", "model")}
    return dict(
        time=time.time(), model=request.model, base_url=base_url, params=json.dumps(params),
        prompt=request.question, sources=json.dumps([a.label for a in request.audio], ensure_ascii=False),
        audio_sha256=",".join(a.sha256 for a in request.audio),
        audio_format=",".join(sorted({a.format for a in request.audio})),
        audio_seconds=request.audio_seconds, cache_key=cache_key,
    )  # fmt: skip


def _response_columns(response: Response) -> dict:
    u = response.usage
    calls = json.dumps([vars(c) for c in response.tool_calls]) if response.tool_calls else None
    return dict(
        cached=int(response.cached), text=response.text, finish_reason=response.finish_reason,
        tool_calls=calls, provider=response.provider, prompt_tokens=u.prompt_tokens,
        completion_tokens=u.completion_tokens, audio_tokens=u.audio_tokens, cost_usd=response.cost_usd,
        cost_source=response.cost_source, latency_s=response.latency_s, ttft_s=response.ttft_s,
        attempts=response.attempts, generation_id=response.generation_id,
        segments=json.dumps(response.segments) if response.segments else None,
        outcome="cached" if response.cached else "answered",
    )  # fmt: skip


def _error_columns(error: BaseException, abandoned: bool) -> dict:
    """A failure; once the server had started (a generation id) it may bill, amount unknown unless
    it said."""
    cost, generation = getattr(error, "cost_usd", None), getattr(error, "generation_id", None)
    source = "reported" if cost is not None else "unknown" if generation else None
    kind = type(error).__name__
    outcome = "abandoned" if abandoned else "cancelled" if kind == "CancelledError" else "failed"
    return dict(
        error=str(error) or kind, error_type=kind, attempts=getattr(error, "attempts", None),
        generation_id=generation, cost_usd=cost, cost_source=source, outcome=outcome,
    )  # fmt: skip
