"""Importing what the first call will need on a daemon thread while the person writes it.

``%load_ext voxmagic`` stays instant (it imports none of numpy, PyAV, httpx or anywidget), but the
first ``%%voxtral`` of a fresh kernel then paid ~0.45 s of imports before its request could leave.
Those imports now run in the background as soon as the extension loads, so a cell typed a moment
later finds them done. A cell run at once (Run All) imports what it needs itself: Python's
per-module import locks make it wait for a module the warm-up is importing, never import it
twice, and the packages listed import none of the user's modules, so no two imports can wait on
each other. A failed import is just tried again, with its proper error, where it is needed.

What the first cell needs only once its request has gone out (anywidget, for the live view) comes
last, and only while no call has begun: a cell run at once imports it itself, after sending
(:func:`call_began`), instead of the warm-up taking CPU from preparing the audio.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

_thread: threading.Thread | None = None
_call_began = threading.Event()
_first_done = threading.Event()  # the first module named (for the notebook layer: numpy, httpx, voxmagic)


def call_began() -> None:
    """A call has begun: it imports what it needs itself, in its own order; the warm-up leaves
    the modules :func:`start` was given as ``then`` to it."""
    _call_began.set()


def start(modules: Iterable[str], then: Iterable[str] = ()) -> None:
    """Import ``modules`` in order on a daemon thread (once; later calls do nothing), then
    ``then`` unless a call has begun. A name ``"module:function"`` also calls that function
    (without arguments) once it is imported."""
    global _thread
    if _thread is not None:
        return
    first, after = list(modules), list(then)

    def run() -> None:
        for name in first[:1]:
            _import(name)
        _first_done.set()
        for name in first[1:]:
            _import(name)
        for name in after:
            if _call_began.is_set():
                return
            _import(name)

    _thread = threading.Thread(target=run, name="voxmagic-warmup", daemon=True)
    _thread.start()


def _import(name: str) -> None:
    module, _, function = name.partition(":")
    try:
        imported = importlib.import_module(module)
        if function:
            getattr(imported, function)()
    except Exception:  # noqa: BLE001 - it is raised again, properly, where it is needed
        pass


def settle() -> None:
    """Until the first module :func:`start` was given is imported, in a wait an interrupt can end.

    A magic calls this before anything else (a cell run at once would wait on that module's
    import lock anyway): a stop pressed in the first moments of a fresh kernel then lands here,
    not inside numpy's import on the main thread, which numpy does not survive: a second import
    of a half-imported numpy fails with "module 'numpy' has no attribute ...", in every call
    after it. The rest of the warm-up goes on beside the call, as before."""
    if _thread is not None:
        while not _first_done.wait(0.05) and _thread.is_alive():
            pass


def wait(timeout: float | None = None) -> bool:
    """Until the imports :func:`start` began are done (True at once if none were started)."""
    if _thread is not None:
        _thread.join(timeout)
    return _thread is None or not _thread.is_alive()
