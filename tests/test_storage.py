"""The history file is never a single point of failure: damaged, unwritable or locked, the work runs.

Real SQLite files throughout. Root ignores permission bits, so read-only cases run in a forked
child that drops to an unprivileged user (the venv's interpreter lives under /root, which that
user cannot execute, so a fresh ``subprocess`` could not start); locks are held by another process.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from voxmagic import storage
from voxmagic.audio import EncodedAudio
from voxmagic.chat import ChatRequest
from voxmagic.results import Response, Usage
from voxmagic.storage import Store

CLIP = EncodedAudio(b"ID3fake-mp3-bytes", "mp3", 2.5, "a.mp3")
REQUEST = ChatRequest("What is said?", (CLIP,))
NOBODY = 65534


def record(store: Store, key: str = "k1", text: str = "hello") -> None:
    answer = Response(text=text, model="m", finish_reason="stop", usage=Usage(prompt_tokens=3, completion_tokens=2))
    store.record(REQUEST, "http://127.0.0.1:1", response=answer, cache_key=key)


def rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT cache_key, text FROM requests ORDER BY id").fetchall()


def warnings(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def assert_off(store: Store, lines: list[str], path: Path) -> None:
    """Every method answers as if the file were empty, and one line said why and what to do."""
    assert len(lines) == 1, lines
    assert lines[0].startswith("voxmagic: history and cache are off for this session: ")
    assert str(path) in lines[0] and "VOXMAGIC_HISTORY" in lines[0]
    assert store.problem == lines[0]
    record(store)
    store.remember_source("fp", [{"sha256": "x"}])
    assert store.cached("k1") is None and store.source("fp") is None
    history = store.history(last=5)
    assert history.empty and tuple(history.columns) == storage.columns()
    assert "cost_usd" in history.columns and "segments" in history.columns


# --- healthy ----------------------------------------------------------------------------------

def test_a_healthy_store_records_and_answers_from_the_cache(tmp_path, capsys):
    store = Store(tmp_path / "history.db")
    record(store, "k1", "first")
    record(store, "k2", "second")
    store.remember_source("fp", [{"sha256": "abc", "start_s": 0.0}])
    hit = store.cached("k1")
    assert hit.text == "first" and hit.cached and hit.cost_usd == 0.0
    assert store.cached("nothing") is None and store.source("fp") == [{"sha256": "abc", "start_s": 0.0}]
    history = store.history()
    assert list(history["text"]) == ["first", "second"] and history["prompt_tokens"].tolist() == [3, 3]
    assert list(store.history(last=1)["text"]) == ["second"]
    assert store.problem is None and warnings(capsys) == []


def test_two_stores_in_many_threads_all_write(tmp_path, capsys):
    path = tmp_path / "history.db"
    stores = [Store(path), Store(path)]
    threads = [threading.Thread(target=lambda i=i: [record(stores[i % 2], f"t{i}-{n}") for n in range(20)])
               for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rows(path)) == 80 and warnings(capsys) == []


# --- damaged ----------------------------------------------------------------------------------

def garbage(path: Path) -> None:
    path.write_bytes(os.urandom(3000))


def truncated(path: Path) -> None:
    """A real history with rows, cut to half its size."""
    maker = Store(path)
    for n in range(300):
        record(maker, f"old{n}", "x" * 200)
    maker.connect().close()  # the last connection: its WAL is folded into the file
    assert not Path(f"{path}-wal").exists()
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize("damage", [garbage, truncated])
def test_a_damaged_file_is_moved_aside_and_a_fresh_one_started(tmp_path, capsys, damage):
    path = tmp_path / "history.db"
    damage(path)
    before = path.read_bytes()
    store = Store(path)
    record(store, "new", "fresh answer")
    (moved,) = tmp_path.glob("history.db.corrupt-*")
    assert re.fullmatch(r"history\.db\.corrupt-\d{8}-\d{6}", moved.name)
    assert moved.read_bytes() == before
    assert rows(path) == [("new", "fresh answer")]
    assert store.cached("new").text == "fresh answer" and store.problem is None
    record(store, "again")
    (line,) = warnings(capsys)
    why = "file is not a database" if damage is garbage else "database disk image is malformed"
    assert line == f"voxmagic: {path} is damaged ({why}); moved it to {moved} and started a fresh history and cache"


def test_damage_found_by_a_later_query_is_moved_aside_too(tmp_path, capsys):
    """The file opens (the schema and the tables' root pages are sound) but the cache lookup
    reads a ruined page."""
    path = tmp_path / "history.db"
    maker = Store(path)
    for n in range(300):
        record(maker, f"old{n}", "x" * 200)
    db = maker.connect()
    sound = db.execute("PRAGMA page_size").fetchone()[0] * max(
        r[0] for r in db.execute("SELECT rootpage FROM sqlite_master"))
    db.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(sound)
        f.write(os.urandom(size - sound))
    store = Store(path)
    store.connect()  # opening and migrating work
    assert store.cached("old5") is None
    (moved,) = tmp_path.glob("history.db.corrupt-*")
    assert moved.stat().st_size == size
    record(store, "new")
    assert rows(path) == [("new", "hello")]
    (line,) = warnings(capsys)
    assert "is damaged (database disk image is malformed); moved it to" in line


# --- cannot be written --------------------------------------------------------------------------

def test_a_parent_that_is_a_file_turns_history_off(tmp_path, capsys):
    (tmp_path / "notes").write_text("not a folder")
    path = tmp_path / "notes" / "history.db"
    store = Store(path)
    record(store)
    lines = warnings(capsys)
    assert f"{path} cannot be created: {tmp_path / 'notes'} is a file, not a folder" in lines[0]
    assert_off(store, lines, path)
    assert warnings(capsys) == []  # once per file and problem, not once per request
    assert (tmp_path / "notes").read_text() == "not a folder"


def test_a_path_that_is_a_folder_turns_history_off(tmp_path, capsys):
    path = tmp_path / "history.db"
    path.mkdir()
    store = Store(path)
    assert store.cached("k1") is None
    lines = warnings(capsys)
    assert f"{path} is a folder, not a file" in lines[0]
    assert_off(store, lines, path)
    assert list(path.iterdir()) == []


def test_a_folder_even_root_cannot_create_turns_history_off(capsys):
    path = Path("/proc/voxmagic-test/history.db")
    store = Store(path)
    assert store.history().empty
    lines = warnings(capsys)
    assert_off(store, lines, path)
    assert not path.parent.exists()


def test_choosing_another_file_tries_again(tmp_path, capsys, monkeypatch):
    (tmp_path / "notes").write_text("")
    bad = tmp_path / "notes" / "history.db"
    store = Store(bad)
    record(store)
    assert store.problem is not None
    store.use(tmp_path / "good.db")
    record(store, "k", "kept")
    assert store.problem is None and rows(tmp_path / "good.db") == [("k", "kept")]
    follows = Store()  # the default file follows VOXMAGIC_HISTORY
    monkeypatch.setenv("VOXMAGIC_HISTORY", str(bad))
    record(follows)
    assert follows.problem is not None
    monkeypatch.setenv("VOXMAGIC_HISTORY", str(tmp_path / "other.db"))
    record(follows, "o", "other")
    assert follows.problem is None and rows(tmp_path / "other.db") == [("o", "other")]
    assert len(warnings(capsys)) == 2  # one per store that met the bad file


@pytest.fixture
def shared_dir():
    """A folder an unprivileged user can reach (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="voxmagic-storage-"))
    top.chmod(0o755)
    yield top
    for sub in top.rglob("*"):
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(top)


def _as_nobody(path: str, out) -> None:
    """In a forked child: drop root, use the store, report what happened (and what was said)."""
    if os.geteuid() == 0:
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    sys.stderr = io.StringIO()
    try:
        store = Store(path)
        record(store)
        store.remember_source("fp", [])
        history = store.history()
        out.send(dict(problem=store.problem, cached=store.cached("k1"), source=store.source("fp"),
                      empty=history.empty, columns=list(history.columns), said=sys.stderr.getvalue()))
    except BaseException as exc:  # report it: the parent asserts there was none
        out.send(dict(raised=repr(exc), said=sys.stderr.getvalue()))


def run_as_nobody(path: Path) -> dict:
    here, there = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("fork").Process(target=_as_nobody, args=(str(path), there))
    child.start()
    report = here.recv() if here.poll(60) else {"raised": "child gave no answer"}
    child.join(10)
    return report


def readonly_folder(top: Path) -> Path:
    (top / "ro").mkdir(mode=0o555)
    return top / "ro" / "history.db"


def readonly_file(top: Path) -> Path:
    (top / "rw").mkdir()
    (top / "rw").chmod(0o777)
    path = top / "rw" / "history.db"
    maker = Store(path)
    record(maker, "old")
    maker.connect().close()
    path.chmod(0o444)
    return path


def damaged_and_stuck(top: Path) -> Path:
    """Garbage that cannot be moved aside: the folder is read-only."""
    (top / "stuck").mkdir()
    path = top / "stuck" / "history.db"
    path.write_bytes(b"garbage " * 500)
    (top / "stuck").chmod(0o555)
    return path


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("make, what", [
    (readonly_folder, "cannot be written: no permission to write in"),
    (readonly_file, "is read-only"),
    (damaged_and_stuck, "is damaged (file is not a database) and could not be moved aside (Permission denied)"),
])
def test_read_only_places_turn_history_off(shared_dir, make, what):
    path = make(shared_dir)
    before = path.read_bytes() if path.exists() else None
    report = run_as_nobody(path)
    assert "raised" not in report, report
    (line,) = report["said"].splitlines()
    assert line.startswith(f"voxmagic: history and cache are off for this session: {path} {what}")
    assert "VOXMAGIC_HISTORY" in line and report["problem"] == line
    assert report["cached"] is None and report["source"] is None
    assert report["empty"] and tuple(report["columns"]) == storage.columns()
    assert (path.read_bytes() if path.exists() else None) == before  # nothing written
    assert not list(path.parent.glob("*.corrupt-*"))  # nothing moved


# --- locked by another process ------------------------------------------------------------------

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert locker.stdout.readline().strip() == "locked"
    return locker


@pytest.mark.parametrize("existing", [True, False], ids=["history", "new-file"])
def test_a_long_lock_turns_history_off_after_the_wait(tmp_path, capsys, monkeypatch, existing):
    monkeypatch.setattr(storage, "LOCK_WAIT_S", 0.5)
    path = tmp_path / "history.db"
    store = Store(path)
    if existing:
        record(store, "old")
    locker = hold_lock(path, 30)
    try:
        started = time.monotonic()
        threads = [threading.Thread(target=record, args=(store, f"k{i}")) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 0.4 < time.monotonic() - started < 5
        lines = warnings(capsys)
        assert f"{path} is locked by another process (waited 0.5 s)" in lines[0]
        # Off is cheap: were any call still to try the file, it would now wait out the 30-s lock.
        monkeypatch.setattr(storage, "LOCK_WAIT_S", 30.0)
        started = time.monotonic()
        assert_off(store, lines, path)
        assert time.monotonic() - started < 10
    finally:
        locker.kill()
        locker.wait()
    with sqlite3.connect(path) as db:  # nothing was written: a new file never got its tables
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert rows(path) == [("old", "hello")] if existing else "requests" not in tables


def test_a_brief_lock_is_waited_out(tmp_path, capsys):
    path = tmp_path / "history.db"
    store = Store(path)
    record(store, "old")
    locker = hold_lock(path, 0.5)
    try:
        started = time.monotonic()
        record(store, "new", "written")
        assert time.monotonic() - started > 0.2
    finally:
        locker.wait(10)
    assert rows(path) == [("old", "hello"), ("new", "written")]
    assert store.problem is None and warnings(capsys) == []
