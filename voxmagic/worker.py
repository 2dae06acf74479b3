"""A helper process for CPU-bound work (encoding audio), so that it runs on another core.

PyAV holds the GIL while it encodes, so a second thread would only take turns with the first.
multiprocessing's ``spawn`` would do, but it imports the caller's main module in the child — a
user's script without an ``if __name__ == "__main__"`` guard would run again — so this is a plain
``python -m voxmagic.worker`` fed over a pipe: each call is a pickled ``(function, args)`` in, a
pickled ``(ok, value)`` out. Calls are taken one at a time; the process leaves when its input
closes (so it never outlives the caller), in its own session (a terminal's Ctrl-C stops the
caller, not it).
"""

from __future__ import annotations

import atexit
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any


class WorkerDied(RuntimeError):
    """The helper process is gone; the caller does the work itself."""


class Worker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "voxmagic.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        atexit.register(self.close)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in the helper process (a module-level function: it goes by name)."""
        with self._lock:
            stdin, stdout = self._proc.stdin, self._proc.stdout
            assert stdin is not None and stdout is not None
            try:
                pickle.dump((function, args), stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
                ok, value = pickle.load(stdout)
            except Exception as exc:  # noqa: BLE001 - a broken pipe, or a reply that does not unpickle
                self.close()
                raise WorkerDied(f"the helper process stopped ({type(exc).__name__})") from None
        if not ok:
            raise value
        return value

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def serve() -> None:
    """The helper's loop: calls from standard input until it closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing printed may corrupt the replies
    while True:
        try:
            function, args = pickle.load(stdin)
        except EOFError:
            return
        try:
            reply = (True, function(*args))
        except Exception as exc:  # noqa: BLE001 - raised again in the caller
            reply = (False, exc)
        pickle.dump(reply, stdout, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.flush()


if __name__ == "__main__":
    serve()
