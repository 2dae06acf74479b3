"""A status line above text that grows while it streams (front end: ``live_text.js``, an anywidget
ES module). Each update sends only what is new — the status line and the text's new end, as one
numbered custom message — not the whole text again; a front end that missed updates asks for it.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import anywidget

from ..loop import LOOP


class LiveText(anywidget.AnyWidget):
    """Created on the main thread (its first update: the status line), then :meth:`show` on
    voxmagic's loop thread only; a front end's request for the whole text, which arrives on the
    kernel's thread, is answered there too."""

    _esm = (files(__package__ or "voxmagic.notebook") / "live_text.js").read_text(encoding="utf-8")

    def __init__(self, status: str) -> None:
        super().__init__()
        self.text, self.status, self.n = "", "", 0  # n: updates sent
        self.on_msg(self._asked)
        self.show("", status)

    def show(self, text: str, status: str) -> bool:
        """Bring the front end to ``text`` under ``status``: what was appended, or the whole text
        when it no longer extends what was shown (a retry cleared it). True if the text changed."""
        msg: dict[str, Any] = {} if status == self.status else {"status": status}
        if text != self.text:
            msg.update({"add": text[len(self.text) :]} if text.startswith(self.text) else {"text": text})
        changed, self.text, self.status = text != self.text, text, status
        if msg:
            self.n += 1
            self.send({**msg, "n": self.n})
        return changed

    def _asked(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if content == {"want": "all"}:
            LOOP.loop.call_soon_threadsafe(self._send_all)

    def _send_all(self) -> None:
        """On the loop thread, so that no update falls between what this says and what follows."""
        self.send({"text": self.text, "status": self.status, "n": self.n})
