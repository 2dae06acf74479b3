"""The error shapes that refuse the local server's transcription forms, and reading a field of one.

Shared by ``_fake_transcriptions`` (the endpoint, which reads the multipart form into ``Fields``)
and ``_fake_voices`` (Mistral's speaker and vocabulary fields); it imports neither.

Error shapes (sources in ``_fake_transcriptions``):
* Mistral — :func:`mistral_error`, ``{"object": "error", "message", "type", "param", "code"}``, and
  :func:`mistral_422` for a malformed form, ``{"detail": [{"type", "loc", "msg", "input"}]}``
  (pydantic's, with ``ctx`` when it has one). A failed assertion nests such a 422 in ``message``
  (``_fake_voices.diarize_refusal``).
* vLLM — :func:`vllm_error`, ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

Fields = list[tuple[str, str]]  # the text fields of a form, in order, repeated names kept


class FormError(Exception):
    """A form the real endpoint refuses: the status and the body it answers with."""

    def __init__(self, status: int, payload: Any):
        super().__init__(str(payload))
        self.status = status
        self.payload = payload

    def response(self, echo: str | None = None) -> web.Response:
        """The refusal; with `echo` (echo_key) its message quotes the request's Authorization header,
        as careless servers' validation errors do (the text of chat's 400 ``metadata.raw``)."""
        if echo is None:
            return web.json_response(self.payload, status=self.status)
        payload, quoted = copy.deepcopy(self.payload), f" (bad request from client with headers Authorization: {echo})"
        if "detail" in payload:  # Mistral's 422
            for item in payload["detail"]:
                item["msg"] += quoted
        elif isinstance(payload.get("message"), dict):  # Mistral's assertion errors nest a 422
            for item in payload["message"]["detail"]:
                item["msg"] += quoted
        else:  # Mistral's {"object": "error", "message"} or vLLM's {"error": {"message"}}
            (payload["error"] if "error" in payload else payload)["message"] += quoted
        return web.json_response(payload, status=self.status)


def mistral_error(
    status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> FormError:
    """Mistral's ``{"object": "error", ...}`` refusal."""
    return FormError(status, {"object": "error", "message": message, "type": kind, "param": param, "code": code})


def mistral_422(field: str | list, kind: str, message: str, value: Any = None, **ctx: Any) -> FormError:
    """Mistral's 422 for one malformed field; `field` is a name or a path (``["context_bias", 1]``)."""
    loc = ["body", *field] if isinstance(field, list) else ["body", field]
    detail = {"type": kind, "loc": loc, "msg": message, "input": value} | ({"ctx": ctx} if ctx else {})
    return FormError(422, {"detail": [detail]})


def vllm_error(status: int, message: str, param: str | None = None, kind: str = "BadRequestError") -> FormError:
    """vLLM's ``{"error": {...}}`` refusal."""
    return FormError(status, {"error": {"message": message, "type": kind, "param": param, "code": status}})


def one(fields: Fields, name: str) -> str | None:
    """The value of field `name` (the last one when it is repeated), None when it is absent."""
    values = [v for k, v in fields if k == name]
    return values[-1] if values else None
