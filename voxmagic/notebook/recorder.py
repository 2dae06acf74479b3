"""``%voxtral_record`` and ``%%voxtral --mic``: a record/stop control in the notebook (front end:
``recorder.js``, an anywidget ES module) that sends 16 kHz PCM to the kernel while it records;
the take itself — samples, pauses, captions, the source it becomes — is
:class:`voxmagic.recording.Take`.

The cell only shows the control and returns: a kernel busy in a cell would not read the comm
messages that carry the audio. They arrive on the kernel's thread between cells and are handed,
in order, to the take on voxmagic's loop, which updates this widget (and, for ``--mic``, streams
the answer) from there. A stop waits until the take has made its source, so the variable is
bound before the next cell runs.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from importlib.resources import files
from typing import Any

import anywidget
import traitlets as t

from ..loop import LOOP
from ..recording import Take, no_microphone, transcriber
from .display import widgets_available
from .options import RecordOptions

_HERE = files(__package__ or "voxmagic.notebook")


class Recorder(anywidget.AnyWidget):
    """The control of one :class:`~voxmagic.recording.Take`: ● records, ■ stops; captions grow
    under it; then a player of what the kernel received."""

    _esm = (_HERE / "recorder.js").read_text(encoding="utf-8")
    _css = (_HERE / "recorder.css").read_text(encoding="utf-8")
    state = t.Unicode("waiting", help="waiting, recording, stopped or failed (the take's)").tag(sync=True)
    status = t.Unicode("", help="one line under the control once it stops or fails").tag(sync=True)
    captions = t.Unicode("", help="live captions, then the transcript of the whole").tag(sync=True)
    audio = t.Bytes(b"", help="what the kernel received, as Ogg/Opus, for the player").tag(sync=True)
    max_seconds = t.Float(help="the front end stops by itself after this long").tag(sync=True)
    refused = t.Unicode(help="the no-microphone line; the front end fills in {why}").tag(sync=True)

    def __init__(self, take: Take) -> None:
        super().__init__(max_seconds=take.max_seconds, refused=no_microphone("{why}"))
        self.take = take
        take.on_change = self._show
        self.on_msg(self._received)

    def _received(self, _widget: Any, content: Any, buffers: Any) -> None:
        kind, take = content.get("kind") if isinstance(content, dict) else None, self.take
        if kind == "pcm" and buffers:
            LOOP.loop.call_soon_threadsafe(take.feed, bytes(buffers[0]))
        elif kind == "start":
            LOOP.loop.call_soon_threadsafe(take.start)
        elif kind == "refused":
            LOOP.loop.call_soon_threadsafe(take.refuse, str(content.get("why", "")))
        elif kind == "stop":
            LOOP.run(_call(take.stop))

    def _show(self) -> None:
        """The take's state on the front end (loop thread)."""
        take = self.take
        with self.hold_sync():
            self.state, self.status, self.captions = take.state, take.message, take.captions
            if take.preview and not self.audio:
                self.audio = take.preview

    def __repr__(self) -> str:
        return f"Recorder({self.take.state}, {self.take.duration_s:.1f} s{', ' * bool(self.status)}{self.status})"


async def _call(function: Callable[[], Any]) -> Any:
    return function()


def microphone_missing(mode: str) -> str:
    """Why no microphone can be had here, or "" where a browser shows widgets."""
    if not widgets_available(mode):
        return "no widgets show here (a terminal, or display_mode 'text')"
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is not None and not kernel.get_parent().get("content", {}).get("allow_stdin", True):
        return "this notebook runs without a browser (nbconvert, nbclient, papermill)"
    return ""


def record(
    options: RecordOptions, namespace: MutableMapping[str, Any], **callbacks: Callable[..., None]
) -> Recorder | None:
    """Show a control; when it stops, bind the source (``-o`` and ``_voxtral_clip``) and its
    transcript (``NAME_text``, ``_voxtral_text``). ``callbacks``: more ``on_stop``/``on_fail``.
    None (after one line) where no microphone can be had."""
    why = microphone_missing(options.mode)
    if why:
        print(no_microphone(why))
        return None
    names = ["_voxtral_clip", *([options.out] if options.out else [])]
    more_on_stop = callbacks.get("on_stop")

    def on_stop(source: Any) -> None:
        namespace.update(dict.fromkeys(names, source))
        if more_on_stop:
            more_on_stop(source)

    def on_transcript(text: str) -> None:
        namespace.update(dict.fromkeys(["_voxtral_text", *([f"{options.out}_text"] if options.out else [])], text))

    take = Take(
        options.out or "recording",
        transcribe=transcriber(options.settings, options.language) if options.captions else None,
        max_seconds=options.max_seconds,
        on_stop=on_stop,
        on_transcript=on_transcript,
        on_fail=callbacks.get("on_fail"),
    )
    from IPython.display import display

    recorder = Recorder(take)
    display(recorder)
    return recorder
