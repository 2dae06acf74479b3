"""Importing what the first call will need on a daemon thread while the person writes it.

``%load_ext voxmagic`` stays instant (it imports none of numpy, PyAV, httpx or anywidget), but the
first ``%%voxtral`` of a fresh kernel then paid ~0.45 s of imports before its request could leave.
Those imports now run in the background as soon as the extension loads, so a cell typed a moment
later finds them done. A cell run at once (Run All) imports what it needs itself: Python's
per-module import locks make it wait for a module the warm-up is importing, never import it
twice, and the packages listed import none of the user's modules, so no two imports can wait on
each other. A failed import is just tried again, with its proper error, where it is needed.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

_thread: threading.Thread | None = None


def start(modules: Iterable[str]) -> None:
    """Import ``modules`` in order on a daemon thread (once; later calls do nothing). A name
    ``"module:function"`` also calls that function (without arguments) once it is imported."""
    global _thread
    if _thread is not None:
        return
    names = list(modules)

    def run() -> None:
        for name in names:
            module, _, function = name.partition(":")
            try:
                imported = importlib.import_module(module)
                if function:
                    getattr(imported, function)()
            except Exception:  # noqa: BLE001 - it is raised again, properly, where it is needed
                pass

    _thread = threading.Thread(target=run, name="voxmagic-warmup", daemon=True)
    _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Until the imports :func:`start` began are done (True at once if none were started)."""
    if _thread is not None:
        _thread.join(timeout)
    return _thread is None or not _thread.is_alive()
