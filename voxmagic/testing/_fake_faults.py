"""The faults the local server can inject, and the queue that hands them to requests.

A test queues a fault, then makes the request it wants broken; what each fault does on the wire
is played in ``_fake_streams`` (chat) and the transcriptions handler. Kept apart so the list of
faults and their meaning read in one place.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["FAULTS", "Fault", "FaultQueue"]

FAULTS = (
    "http_400",
    "http_401",
    "http_402",
    "http_403",
    "http_408",
    "http_413",
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "reset_mid_stream",
    "stall",
    "malformed_sse",
    "error_chunk",
    "no_done",
    "no_usage",
)
"""Every fault ``LocalServer.add_fault`` takes:

* ``http_NNN`` — that status with OpenRouter's error body (``http_429`` with ``Retry-After``).
* ``reset_mid_stream`` — a TCP reset after ``after_tokens`` answer pieces (not streaming: at once).
* ``stall`` — ``seconds`` of silence after ``after_tokens`` pieces; at 0, before the status line.
* ``malformed_sse`` — a data line cut mid-JSON, then the body ends (not streaming: JSON cut short).
* ``error_chunk`` — a chunk with ``error`` and ``finish_reason: "error"``, then ``[DONE]`` (not
  streaming: a 200 whose choice carries ``error`` and the partial content).
* ``no_done`` — every content chunk, the ``finish_reason`` chunk and the usage chunk, then the
  chunked body ends cleanly without ``data: [DONE]`` (billed: the usage went out). Not streaming,
  there is no [DONE] to drop: the answer is normal.
* ``no_usage`` — every content chunk and the ``finish_reason`` chunk, then a clean end with neither
  the usage chunk nor ``[DONE]`` (the client never learns the cost). Not streaming: a body
  without ``usage``.

``no_done`` and ``no_usage`` act at the end of the answer, whatever ``after_tokens``.
"""


@dataclass
class Fault:
    """One queued fault; ``times`` counts down as requests take it."""

    name: str
    times: int = 1
    after_tokens: int = 0
    seconds: float = 0.0
    retry_after: float | None = None
    match: str | None = None


class FaultQueue:
    """Faults in the order they were queued; each goes to the next request whose prompt matches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        fault: str,
        *,
        times: int = 1,
        after_tokens: int = 0,
        seconds: float = 0.0,
        retry_after: float | None = None,
        match: str | None = None,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if times < 1 or after_tokens < 0 or seconds < 0:
            raise ValueError("times must be >= 1, after_tokens and seconds >= 0")
        if fault == "stall" and not seconds:
            seconds = 5.0
        with self._lock:
            self._faults.append(Fault(fault, times, after_tokens, seconds, retry_after, match))

    def take(self, prompt: str) -> Fault | None:
        """The first fault whose ``match`` is in `prompt` (or has none), counted down; else None."""
        with self._lock:
            for fault in self._faults:
                if fault.match is None or fault.match in prompt:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)
