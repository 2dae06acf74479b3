"""Typed, frozen options: a magic's parsed line plus the session defaults (``%config``), resolved
once, checked once, and then only read.

The line wins over ``%config``, which wins over the environment and the defaults that
:class:`~voxmagic.settings.Settings`, :class:`~voxmagic.chat.Params` and :mod:`voxmagic.limits`
own. Every bound is checked here with the option's own spelling (``--concurrency 0``), so a bad
value never reaches a request.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import limits
from ..chat import TRANSCRIPT_TEMPERATURE, Params
from ..errors import ConfigError
from ..moments import Span, parse_span
from ..providers import vocabulary
from ..runner import Caching
from ..settings import Settings, url_for

# an option whose bound goes by another name in voxmagic.limits
_BOUND_OF = {"sr": "sample_rate"}


@dataclass(frozen=True)
class ViewOptions:
    """How a running call is shown: ``mode`` auto/widget/text, updates per second, and the longest
    audio that gets a player embedded (it is saved in the notebook)."""

    mode: str = "auto"
    rate: float = limits.DEFAULT_UPDATES_PER_SECOND
    player_max_seconds: float = limits.DEFAULT_PLAYER_MAX_SECONDS
    hidden: bool = False  # the cell ends with ";": its result is not shown, so nothing is built for it


@dataclass(frozen=True, kw_only=True)
class CallOptions:
    """What both ``%%voxtral`` and ``%voxtral_transcribe`` take."""

    audio: tuple[str, ...] = ()
    out: str | None = None
    settings: Settings = field(default_factory=Settings)
    params: Params = field(default_factory=Params)
    audio_format: str = "mp3"
    sample_rate: int | None = None
    span: Span | None = None  # --at: only this moment of each source
    trim_silence: bool = False  # long pauses cut before upload
    concurrency: int = limits.DEFAULT_CONCURRENCY
    max_cost: float | None = None
    caching: Caching = Caching()
    dry_run: bool = False
    background: bool = False
    view: ViewOptions = ViewOptions()

    @property
    def stream(self) -> bool | None:
        """For a batch: long chunks stream unless streaming is off (``--no-stream``, ``%config``)."""
        return None if self.params.stream else False


@dataclass(frozen=True, kw_only=True)
class AskOptions(CallOptions):
    """``%%voxtral``: one question (or, with ``--each``, one per source)."""

    system: str | None = None
    json: bool = False
    schema: str | None = None  # a name in the notebook, resolved when the command runs
    tools: tuple[str, ...] = ()
    tool_choice: str | None = None
    auto_tools: bool = False
    max_tool_rounds: int = limits.DEFAULT_TOOL_ROUNDS
    resume: bool = False
    each: bool = False
    together: bool = False
    mic: bool = False  # record the audio in the notebook (push-to-talk)

    def __post_init__(self) -> None:
        if self.mic and (self.audio or self.resume or self.each):
            raise ConfigError("--mic records the audio to ask about: it takes no AUDIO, --continue or --each")
        if self.each and self.together:
            raise ConfigError("--each asks about every source separately and --together about all at once: choose one")
        if self.together and not self.schema:
            raise ConfigError(
                "--together only changes what --schema does with several sources; without --schema "
                "they already get one answer between them"
            )
        if self.resume and (self.each or self.together):
            raise ConfigError("--continue follows up one conversation; it does not combine with --each or --together")
        if self.resume and self.audio:
            raise ConfigError(
                "--continue asks about the audio already in the conversation: leave out "
                f"{' '.join(self.audio)} (or ask without --continue to start a new one)"
            )


@dataclass(frozen=True, kw_only=True)
class TranscribeOptions(CallOptions):
    """``%voxtral_transcribe``: many sources into a table."""

    language: str | None = None
    translate_to: str | None = None
    hint: str | None = None
    segments: bool = False
    max_chunk_s: float | None = limits.DEFAULT_CHUNK_MINUTES * 60
    schema: str | None = None
    subtitles: Mapping[str, str] = field(default_factory=dict)  # format -> folder
    api: str | None = None
    diarize: bool = False
    vocab: tuple[str, ...] = ()
    dask: bool = False  # on the active dask.distributed Client (voxmagic.dask)


@dataclass(frozen=True, kw_only=True)
class RecordOptions:
    """``%voxtral_record`` (and ``--mic``): where the take goes, and how it is captioned."""

    out: str | None = None
    captions: bool = True
    language: str | None = None
    max_seconds: float = limits.DEFAULT_RECORDING_SECONDS
    settings: Settings = field(default_factory=Settings)
    mode: str = "auto"  # the display mode: no widgets, no microphone


def where(args: Namespace, config: Mapping[str, Any]) -> dict[str, Any]:
    """Model, base URL and provider: the line's over the session's; the session's base URL only
    for the session's provider (see :func:`voxmagic.settings.url_for`)."""
    chosen = {n: _pick(getattr(args, n), config[n]) for n in ("model", "base_url", "provider")}
    chosen["base_url"] = args.base_url or url_for(args.provider, config["base_url"], config["provider"])
    return chosen


def _pick(given: Any, default: Any) -> Any:
    return given if given is not None else default


def _checked(args: Namespace) -> None:
    values = {_BOUND_OF.get(k, k): v for k, v in vars(args).items()}
    names = {_BOUND_OF.get(k, k): k for k in vars(args)}
    limits.check_all(values, label=lambda name: "--" + names[name].replace("_", "-"))


_CONFIG_ONLY = "referer title max_attempts backoff read_timeout rate_limit_patience download_timeout".split()
_LINE_ONLY = "top_p stop frequency_penalty presence_penalty seed".split()


def _common(
    args: Namespace, config: Mapping[str, Any], *, temperature: float | None, max_tokens: int | None
) -> dict[str, Any]:
    """The shared part, from the line (``args``) over the traits (``config``)."""
    _checked(args)
    # connection settings only %config sets, and sampling options only the line sets
    connection = {n: config[n] for n in _CONFIG_ONLY}
    chosen = where(args, config)
    settings = Settings.resolve(key_env=config["api_key_env"], **chosen, **connection)
    sampling = {n: getattr(args, n) for n in _LINE_ONLY}
    stream = False if args.no_stream else config["stream"]
    params = Params(
        max_tokens=_pick(args.max_tokens, max_tokens),
        temperature=_pick(args.temperature, temperature),
        stream=stream,
        **sampling,
    )
    return dict(
        audio=tuple(args.audio),
        out=args.out,
        settings=settings,
        params=params,
        audio_format=args.format or config["audio_format"],
        sample_rate=args.sr,
        span=parse_span(args.at) if args.at else None,
        trim_silence=args.trim_silence or config["trim_silence"],
        concurrency=_pick(getattr(args, "concurrency", None), config["concurrency"]),
        max_cost=_pick(args.max_cost, config["max_cost"]),
        caching=Caching.of(config["cache"] and not args.no_cache, args.refresh),
        dry_run=args.dry_run,
        background=args.background,
        view=ViewOptions(config["display_mode"], config["updates_per_second"], config["player_max_seconds"]),
    )


def ask_options(args: Namespace, config: Mapping[str, Any]) -> AskOptions:
    """``%%voxtral``'s line: ``%config`` gives the default temperature and max_tokens."""
    common = _common(args, config, temperature=config["temperature"], max_tokens=config["max_tokens"])
    tools = tuple(dict.fromkeys(filter(None, (n.strip() for n in (args.tools or "").split(",")))))
    if args.auto_tools and not tools:
        raise ConfigError("--auto-tools runs the functions --tools names: add --tools NAMES")
    if args.max_tool_rounds is not None and not args.auto_tools:
        raise ConfigError("--max-tool-rounds limits --auto-tools: add --auto-tools, or leave it out")
    if args.resume and (args.at or args.trim_silence):
        typed = "--at" if args.at else "--trim-silence"
        raise ConfigError(
            f"--continue asks about the audio already in the conversation, as it was sent: {typed} "
            "cannot change it (ask without --continue to start a new conversation)"
        )
    return AskOptions(
        **common,
        system=args.system,
        json=args.json,
        schema=args.schema,
        tools=tools,
        tool_choice=args.tool_choice,
        auto_tools=args.auto_tools,
        max_tool_rounds=_pick(args.max_tool_rounds, config["max_tool_rounds"]),
        resume=args.resume,
        each=args.each,
        together=args.together,
        mic=args.mic,
    )


def transcribe_options(args: Namespace, config: Mapping[str, Any]) -> TranscribeOptions:
    """``%voxtral_transcribe``'s line: transcripts default to temperature 0 (Mistral's advice)."""
    common = _common(args, config, temperature=TRANSCRIPT_TEMPERATURE, max_tokens=None)
    minutes = _pick(args.chunk_minutes, config["chunk_minutes"])
    subtitles = {fmt: folder for fmt, folder in (("srt", args.srt), ("vtt", args.vtt)) if folder}
    for fmt, folder in subtitles.items():
        path = Path(folder).expanduser()  # an existing file, or a name that would make a folder "new.srt"
        if (path.exists() and not path.is_dir()) or (not path.exists() and path.suffix.lower() in (".srt", ".vtt")):
            raise ConfigError(
                f"--{fmt} {folder}: that is a file name; --{fmt} takes a folder to write one .{fmt} per source into"
            )
    return TranscribeOptions(
        **common,
        language=args.language,
        translate_to=args.translate_to,
        hint=args.prompt,
        segments=args.segments,
        max_chunk_s=minutes * 60 if minutes else None,
        schema=args.schema,
        subtitles=subtitles,
        api=args.api,
        diarize=args.diarize,
        vocab=vocabulary(args.vocab),
        dask=args.dask,
    )


def record_options(args: Namespace, config: Mapping[str, Any]) -> RecordOptions:
    """``%voxtral_record``'s line over the session's connection settings."""
    chosen = where(args, config)
    settings = Settings.resolve(key_env=config["api_key_env"], **chosen, **{n: config[n] for n in _CONFIG_ONLY})
    return RecordOptions(
        out=args.out,
        captions=not args.no_captions,
        language=args.language,
        max_seconds=limits.check("max_seconds", _pick(args.max_seconds, RecordOptions.max_seconds), "--max-seconds"),
        settings=settings,
        mode=config["display_mode"],
    )
