"""Python functions as tools: a tool definition from a signature and docstring, and calling it back.

A notebook user already has the function; writing its JSON schema by hand is the chore this
removes. Supported annotations: str, int, float, bool, list[X], dict, Literal[...], Optional[X],
Enum subclasses; anything else is described as a string.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import ConfigError
from .results import ToolCall

_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(annotation: Any) -> dict[str, Any]:
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _schema(inner[0]) if len(inner) == 1 else {"anyOf": [_schema(a) for a in inner]}
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        return {"type": "array", "items": _schema(args[0]) if args else {}}
    if origin is dict or annotation is dict:
        return {"type": "object"}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return {"enum": [m.value for m in annotation]}
    return {"type": "string"}


def _param_docs(doc: str) -> dict[str, str]:
    """Per-parameter text from a Google-style ``Args:`` or a ``name: text`` / ``:param name:`` list."""
    found: dict[str, str] = {}
    for match in re.finditer(r"^[ \t]*(?::param[ \t]+)?(\w+)[ \t]*(?:\([^)]*\))?[ \t]*:[ \t]*(\S.*)$", doc, re.M):
        found.setdefault(match[1], match[2].strip())
    return found


def tool_from_function(fn: Callable[..., Any]) -> dict[str, Any]:
    """An OpenAI-style ``{"type": "function", "function": {...}}`` definition for ``fn``."""
    if not callable(fn):
        raise ConfigError(f"{fn!r} is not a function and cannot be a tool")
    name = getattr(fn, "__name__", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise ConfigError(f"{name!r} is not a usable tool name (letters, digits, _ and -, ≤64 chars)")
    doc = inspect.getdoc(fn) or ""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to strings
        hints = {}
    docs = _param_docs(doc)
    properties, required = {}, []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = _schema(hints.get(param.name, str))
        if param.name in docs:
            prop["description"] = docs[param.name]
        properties[param.name] = prop
        if param.default is param.empty:
            required.append(param.name)
    summary = doc.split("\n\n")[0].strip() if doc else f"Call {name}."
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": summary,
            "parameters": {"type": "object", "properties": properties, "required": required},
        },
    }


def call_tools(calls: list[ToolCall], functions: dict[str, Callable[..., Any]]) -> list[dict[str, Any]]:
    """Run each requested function with the model's arguments; an exception becomes that call's error."""
    results = []
    for call in calls:
        entry: dict[str, Any] = {"name": call.name, "arguments": None, "result": None, "error": None}
        try:
            entry["arguments"] = call.args
            fn = functions.get(call.name)
            if fn is None:
                raise LookupError(f"the model called an unknown tool {call.name!r}")
            entry["result"] = fn(**entry["arguments"])
        except Exception as exc:  # the user's function failing must not lose the other calls
            entry["error"] = f"{type(exc).__name__}: {exc}"
        results.append(entry)
    return results


def tool_line(run: dict[str, Any]) -> str:
    """``→ name(arguments) = result`` (or ``! error``, or ``(not run)``)."""
    args = run.get("arguments")
    args = ", ".join(f"{k}={v!r}" for k, v in args.items()) if isinstance(args, dict) else (args or "")
    if "result" not in run:
        outcome = "  (not run)"
    elif run.get("error"):
        outcome = f"  ! {run['error']}"
    else:
        outcome = f" = {run['result']!r}"
    return f"→ {run['name']}({args}){outcome}"[:500]
