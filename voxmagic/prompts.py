"""The instructions voxmagic writes for the chat model: a verbatim transcript, a translation, or a
JSON object filled from what is said. Plain functions, so users can read and reuse them."""

from __future__ import annotations


def _context(language: str | None, hint: str | None) -> str:
    text = f" The speech is in {language}." if language else ""
    return text + (f" Context and vocabulary: {hint}" if hint else "")


def transcription_prompt(
    language: str | None = None,
    hint: str | None = None,
    translate_to: str | None = None,
    vocabulary: tuple[str, ...] = (),
) -> str:
    """The chat model's instruction; ``vocabulary`` is a glossary line (names, jargon spelled as
    given), what Mistral's ``context_bias`` does on its transcriptions endpoint."""
    if translate_to:
        prompt = (
            f"Translate the speech in this audio into {translate_to}. Reply with the "
            "translation only, without commentary."
        )
    else:
        prompt = "Transcribe this audio verbatim. Reply with the transcript only, without commentary."
    glossary = f" Spell these words as written: {', '.join(vocabulary)}." if vocabulary else ""
    return prompt + _context(language, hint) + glossary


def extraction_prompt(language: str | None = None, hint: str | None = None) -> str:
    return (
        "Listen to this audio and reply with one JSON object that fills in the fields of the "
        "requested schema from what is said. Use null for what the audio does not tell." + _context(language, hint)
    )
