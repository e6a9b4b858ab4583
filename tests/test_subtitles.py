"""SRT and WebVTT output of components.common.subtitles."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from components.common.records import Segment
from components.common.subtitles import format_timestamp, to_srt, to_vtt

SEGMENTS = [
    Segment(0.0, 2.5, "Good morning everyone."),
    {"start": 2.5, "end": 3661.0016, "text": " Before we begin, "},
]


def test_srt_numbers_cues_and_uses_comma_milliseconds() -> None:
    assert to_srt(SEGMENTS) == (
        "1\n00:00:00,000 --> 00:00:02,500\nGood morning everyone.\n"
        "\n"
        "2\n00:00:02,500 --> 01:01:01,002\nBefore we begin,\n"
    )


def test_vtt_has_header_and_dot_milliseconds() -> None:
    assert to_vtt(SEGMENTS) == (
        "WEBVTT\n"
        "\n"
        "1\n00:00:00.000 --> 00:00:02.500\nGood morning everyone.\n"
        "\n"
        "2\n00:00:02.500 --> 01:01:01.002\nBefore we begin,\n"
    )


def test_no_segments_give_valid_empty_files() -> None:
    assert to_srt([]) == ""
    assert to_vtt([]) == "WEBVTT\n"


def test_empty_text_cues_are_dropped_and_the_rest_renumbered() -> None:
    srt = to_srt(
        [Segment(0, 1, "  "), Segment(1, 2, "one"), Segment(2, 3, ""), Segment(3, 4, "two")]
    )
    assert re.findall(r"^(\d+)\n", srt, flags=re.M) == ["1", "2"]
    assert "00:00:03,000 --> 00:00:04,000\ntwo" in srt


def test_text_cannot_break_a_cue() -> None:
    vtt = to_vtt([Segment(0, 1, "first line\n\nsecond --> line")])
    assert vtt.endswith("1\n00:00:00.000 --> 00:00:01.000\nfirst line\nsecond -> line\n")


@given(st.floats(min_value=0, max_value=360_000, allow_nan=False))
def test_timestamp_round_trips_to_the_millisecond(seconds: float) -> None:
    stamp = format_timestamp(seconds, ",")
    match = re.fullmatch(r"(\d{2,}):(\d{2}):(\d{2}),(\d{3})", stamp)
    assert match, stamp
    h, m, s, ms = map(int, match.groups())
    assert m < 60 and s < 60
    assert abs(h * 3600 + m * 60 + s + ms / 1000 - seconds) <= 0.0005 + 1e-9
