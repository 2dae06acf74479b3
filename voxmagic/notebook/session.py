"""What a notebook keeps between cells, and how one call runs in it: blocking (Ctrl-C cancels what
is in flight and keeps what finished) or in the background as a :class:`~voxmagic.jobs.Job`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Interrupted
from ..jobs import Job
from ..loop import LOOP

if TYPE_CHECKING:
    from ..conversation import Exchange


@dataclass
class Session:
    """State that outlives a cell: the conversation ``--continue`` follows up, and the most
    recent live view (for tests and debugging)."""

    conversation: Exchange | None = None
    last_view: Any = None
    players: set[str] = field(default_factory=set)  # sources whose player this notebook already has


def start(
    work: Coroutine[Any, Any, Any],
    *,
    background: bool,
    namespace: MutableMapping[str, Any],
    description: str,
    on_interrupt: Callable[[], str],
    meanwhile: Callable[[], object] | None = None,
    announce: bool = False,
) -> Any:
    """Run ``work`` (which closes and finishes its view and binds variables itself) until it
    ends, or hand back a Job at once; an interrupt becomes one line saying what was kept.
    ``meanwhile`` runs in the cell once ``work`` has started (a player drawn while it sends).
    ``announce``: a background job that fails says so in one line (a terminal, where no view
    shows its error; its success prints as it finishes)."""
    if background:
        job = Job(LOOP.submit(work), description)
        namespace["_voxtral_job"] = job
        if announce:
            job.when_failed(lambda error: print(f"voxmagic: {description} failed: {error}", file=sys.stderr))
        if meanwhile is not None:
            meanwhile()
        return job
    try:
        with _warnings_after():
            return LOOP.run(work, meanwhile=meanwhile)
    except KeyboardInterrupt:
        raise Interrupted(on_interrupt()) from None


@contextmanager
def _warnings_after() -> Iterator[None]:
    """The store's one-line warnings (history off, a damaged file set aside) wait for the call's
    own output: told while an answer streamed, one landed mid-line in a terminal."""
    from .. import storage

    held = storage.warn
    told: list[str] = []
    storage.warn = told.append  # type: ignore[assignment]  # what storage.warn is there for
    try:
        yield
    finally:
        storage.warn = held
        for line in told:
            held(line)
