"""Speaker labels in every output format: SRT, WebVTT, text, summarizer input, report."""

from __future__ import annotations

from components.common.records import Segment
from components.common.subtitles import to_srt, to_text, to_vtt
from components.report.speakers import talk_times
from components.summarize.prompts import transcript_pieces

CALL = [
    Segment(0.3, 4.5, "Thank you for calling.", "agent"),
    {"start": 5.0, "end": 9.4, "text": " My bill is too high. ", "speaker": "customer"},
    {"start": 9.5, "end": 11.0, "text": "It doubled.", "speaker": "customer"},
    Segment(12.0, 13.0, "Let me check.", "a<b>&c"),
]


def test_srt_prefixes_each_cue_with_its_speaker() -> None:
    srt = to_srt(CALL)
    assert "1\n00:00:00,300 --> 00:00:04,500\nagent: Thank you for calling.\n" in srt
    assert "2\n00:00:05,000 --> 00:00:09,400\ncustomer: My bill is too high.\n" in srt


def test_vtt_puts_each_cue_in_a_voice_span() -> None:
    vtt = to_vtt(CALL)
    assert "00:00:00.300 --> 00:00:04.500\n<v agent>Thank you for calling.\n" in vtt
    assert "<v customer>It doubled.\n" in vtt
    assert "<v a&lt;b&gt;&amp;c>Let me check.\n" in vtt


def test_segments_without_speakers_keep_the_old_output() -> None:
    plain = [Segment(0.0, 1.0, "Hello there."), {"start": 1, "end": 2, "text": "Bye."}]
    assert to_srt(plain) == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello there.\n\n2\n00:00:01,000 --> 00:00:02,000\nBye.\n"
    )
    assert "<v" not in to_vtt(plain)
    assert to_text(plain, "Hello there. Bye.") == "Hello there. Bye.\n"


def test_text_has_one_line_per_speaker_turn() -> None:
    assert to_text(CALL, "ignored") == (
        "agent: Thank you for calling.\n"
        "customer: My bill is too high. It doubled.\n"
        "a<b>&c: Let me check.\n"
    )


def test_summarizer_input_is_speaker_turns() -> None:
    record = {"segments": [s if isinstance(s, dict) else vars(s) for s in CALL]}
    assert transcript_pieces(record) == [
        "agent: Thank you for calling.\n",
        "customer: My bill is too high. It doubled.\n",
        "a<b>&c: Let me check.\n",
    ]
    assert transcript_pieces({"segments": [{"text": " a "}, {"text": "b"}]}) == ["a", "b"]


def test_talk_times_per_speaker_in_order_of_first_appearance() -> None:
    segments = [s if isinstance(s, dict) else vars(s) for s in CALL]
    assert talk_times(segments) == "agent 4.2 s, customer 5.9 s, a<b>&c 1.0 s"
    assert talk_times([{"start": 0, "end": 1, "text": "x", "speaker": None}]) == ""


def test_report_and_export_show_the_speakers(tmp_path) -> None:
    from components.common.records import SummaryRecord, TranscriptRecord, write_jsonl
    from components.report.report import ReportOptions, build_report, export

    source = str(tmp_path / "in" / "call.wav")
    write_jsonl(tmp_path / "manifest.jsonl", [{"source": source, "name": "call.wav"}])
    record = TranscriptRecord(source, duration_s=13.0, text="x", segments=list(CALL))
    write_jsonl(tmp_path / "t.jsonl", [record])
    write_jsonl(tmp_path / "s.jsonl", [SummaryRecord(source, summary="The agent checks.")])
    report = build_report(
        str(tmp_path / "manifest.jsonl"),
        [str(tmp_path / "t.jsonl")],
        [str(tmp_path / "s.jsonl")],
        str(tmp_path / "in"),
        ReportOptions(),
    )
    assert "<br><small>agent 4.2 s, customer 5.9 s, a&lt;b&gt;&amp;c 1.0 s</small>" in report.html
    assert "call.wav (agent 4.2 s, customer 5.9 s" in report.markdown
    export(str(tmp_path / "out"), report)
    out = tmp_path / "out"
    assert (out / "text" / "call.wav.txt").read_text().startswith("agent: Thank you")
    assert "customer: My bill is too high." in (out / "subtitles" / "call.wav.srt").read_text()
    assert "<v customer>It doubled." in (out / "subtitles" / "call.wav.vtt").read_text()
