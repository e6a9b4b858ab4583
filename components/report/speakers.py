"""The report's speaker line for one file: who spoke, and for how long."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def talk_times(segments: Iterable[dict[str, Any]]) -> str:
    """``agent 14.2 s, customer 12.0 s``: each labelled speaker's segment seconds, in order of
    first appearance; empty when no segment has a ``speaker``."""
    seconds: dict[str, float] = {}
    for seg in segments:
        if seg.get("speaker") and str(seg.get("text") or "").strip():
            length = max(0.0, float(seg["end"]) - float(seg["start"]))
            seconds[seg["speaker"]] = seconds.get(seg["speaker"], 0.0) + length
    return ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
