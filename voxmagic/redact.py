"""Keys never travel back: every text a server sends passes one redaction step before it can reach
an exception, a table row, history, the cache or a display.

Careless or hostile servers echo the Authorization header ("Invalid API key provided: Bearer
sk-or-..."), in a 401's message, a 400's ``metadata.raw`` or an error chunk mid-stream. The
client redacts each parsed payload and each raw body as it arrives, and streamed text through a
:class:`StreamRedactor`, which also catches a key split across two deltas. A leaf module.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .providers import KEY_ENVS

MASK = "[key hidden]"
MIN_SECRET = 8  # shorter "keys" (test placeholders) would mask ordinary words


class Redactor:
    """Replaces each of ``secrets`` with :data:`MASK` wherever it appears."""

    def __init__(self, secrets: Iterable[str | None] = ()):
        given = [s for s in secrets if s]  # and each as it is without the line end a pasted key brings
        unique = {v for s in given for v in (s, s.strip()) if len(v) >= MIN_SECRET}
        self.secrets = sorted(unique, key=len, reverse=True)  # a key inside a longer one: longest first

    @classmethod
    def for_key(cls, api_key: str | None) -> Redactor:
        """The key in use, and every provider's key variable that is set (any of them may echo)."""
        return cls([api_key, *(os.environ.get(name) for name in KEY_ENVS)])

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def brief(self, exc: BaseException) -> str:
        """An exception in a few words (its class and first line), keys hidden."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return self.text(f"{type(exc).__name__}: {first}"[:160] if first else type(exc).__name__)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def value(self, obj: Any) -> Any:
        """A parsed JSON value with every string redacted (dict keys too)."""
        if not self.secrets:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.value(v) for v in obj]
        return obj

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts text that arrives in pieces. The end of what came so far is held back while it could
    be the start of a key, so a key split over two deltas never shows; the hold lasts only as long
    as the text really looks like a key's beginning."""

    def __init__(self, redactor: Redactor):
        self.redactor = redactor
        self.held = ""

    def feed(self, piece: str) -> str:
        """What can be shown now of everything fed so far."""
        if not self.redactor.secrets:
            return piece
        text = self.redactor.text(self.held + piece)
        keep = self._risky_tail(text)
        self.held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        rest, self.held = self.held, ""
        return self.redactor.text(rest)

    def _risky_tail(self, text: str) -> int:
        """Length of the longest end of ``text`` that is a proper beginning of a secret."""
        longest = 0
        for secret in self.redactor.secrets:
            for n in range(min(len(secret) - 1, len(text)), longest, -1):
                if text.endswith(secret[:n]):
                    longest = n
                    break
        return longest
