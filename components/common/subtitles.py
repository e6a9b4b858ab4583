"""Subtitles and plain text from transcript segments: SubRip (``.srt``), WebVTT (``.vtt``)
and the ``text/<name>.txt`` transcript.

Segments are :class:`~components.common.records.Segment` objects or dicts with ``start``,
``end`` (seconds), ``text`` and an optional ``speaker``, as in ``transcripts.jsonl``. Cues
with no text are left out and cues are renumbered; no segments give a valid empty file
(empty SRT, bare ``WEBVTT`` header). A segment's speaker becomes a ``speaker: `` prefix in
SRT, a voice span ``<v speaker>`` in WebVTT, and a ``speaker: `` line per turn in the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from components.common.records import Segment


def _fields(segment: Segment | dict[str, Any]) -> tuple[float, float, str, str | None]:
    if isinstance(segment, dict):
        start, end = float(segment["start"]), float(segment["end"])
        return start, end, str(segment["text"]), segment.get("speaker")
    return float(segment.start), float(segment.end), segment.text, segment.speaker


def format_timestamp(seconds: float, decimal_marker: str) -> str:
    """``HH:MM:SS,mmm`` (SRT, marker ``,``) or ``HH:MM:SS.mmm`` (VTT, marker ``.``)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cues(
    segments: Iterable[Segment | dict[str, Any]],
) -> list[tuple[float, float, str, str | None]]:
    cues = []
    for segment in segments:
        start, end, text, speaker = _fields(segment)
        # A cue's text may not hold a blank line (it would end the cue early).
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
        if lines:
            text = "\n".join(lines).replace("-->", "->")
            name = " ".join(speaker.split()) if speaker else ""
            cues.append((start, max(start, end), text, name or None))
    return cues


def to_srt(segments: Iterable[Segment | dict[str, Any]]) -> str:
    """The segments as a SubRip file: numbered cues from 1, ``HH:MM:SS,mmm`` timestamps,
    ``speaker: `` before the text of a segment with a speaker."""
    blocks = [
        f"{n}\n{format_timestamp(start, ',')} --> {format_timestamp(end, ',')}\n"
        f"{f'{speaker}: ' if speaker else ''}{text}\n"
        for n, (start, end, text, speaker) in enumerate(_cues(segments), 1)
    ]
    return "\n".join(blocks)


def _voice(speaker: str) -> str:
    """A WebVTT voice span's annotation: no ``&``, ``<`` or ``>`` (they would end it)."""
    return speaker.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(segments: Iterable[Segment | dict[str, Any]]) -> str:
    """The segments as a WebVTT file: ``WEBVTT`` header, ``HH:MM:SS.mmm`` timestamps, a
    voice span ``<v speaker>`` around the text of a segment with a speaker."""
    blocks = [
        f"{n}\n{format_timestamp(start, '.')} --> {format_timestamp(end, '.')}\n"
        f"{f'<v {_voice(speaker)}>' if speaker else ''}{text}\n"
        for n, (start, end, text, speaker) in enumerate(_cues(segments), 1)
    ]
    return "\n".join(["WEBVTT\n", *blocks])


def to_text(segments: Iterable[Segment | dict[str, Any]], text: str) -> str:
    """The transcript as plain text: ``text`` as it is when no segment has a speaker, else
    one ``speaker: words`` line per turn (consecutive segments of one speaker joined)."""
    cues = _cues(segments)
    if not any(speaker for *_, speaker in cues):
        return text + "\n"
    turns: list[tuple[str, list[str]]] = []
    for *_, line, speaker in cues:
        name = speaker or "unknown"
        if turns and turns[-1][0] == name:
            turns[-1][1].append(" ".join(line.split()))
        else:
            turns.append((name, [" ".join(line.split())]))
    return "".join(f"{name}: {' '.join(lines)}\n" for name, lines in turns)
