"""Redaction of personal data with Presidio: entity types, spoken forms, records, modes."""

from __future__ import annotations

import pytest

from components.common import redact
from components.common.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "placeholder", "value"),
    [
        ("My card number is 4111 1111 1111 1111, thanks.", "[CARD]", "4111"),
        ("The card is 4111-1111-1111-1111.", "[CARD]", "1111"),
        (
            "My card number is four one one one, one one one one, one one one one, "
            "one one one one.",
            "[CARD]",
            "one one",
        ),
        ("The card number is 4539, 148, 0343, 647.", "[CARD]", "0343"),  # misheard: no Luhn
        ("Call me on 415-867-5309 please.", "[PHONE]", "5309"),
        (
            "My phone number is four one five, eight six seven, five three zero nine.",
            "[PHONE]",
            "five three zero nine",
        ),
        ("Write to maria.lopez@example.com today.", "[EMAIL]", "lopez"),
        ("My email is maria dot lopez at example dot com.", "[EMAIL]", "lopez"),
        ("My email is maria.lopez at example.com.", "[EMAIL]", "lopez"),
        ("Send it to DE89 3704 0044 0532 0130 00 please.", "[IBAN]", "3704"),
        ("My social security number is 536-22-8726.", "[SSN]", "8726"),
        ("Hello, my name is Maria Lopez and I need help.", "[PERSON]", "Lopez"),
    ],
)
def test_each_entity_type_becomes_its_placeholder(text, placeholder, value):
    out = redact.redact_text(text)
    assert placeholder in out
    assert value not in out


@pytest.mark.parametrize(
    "text",
    [
        "The reference 45391480343647 stands alone.",
        "Order twelve has three items and cost forty two dollars.",
        "Oh, one of the two options is fine. We met at noon.",
        "Revenue grew 12 percent to 4.5 billion in 2025.",
    ],
)
def test_text_without_personal_data_stays_as_it_is(text):
    assert redact.redact_text(text) == text


def test_a_number_across_segments_is_redacted_in_each():
    record = {
        "source": "a.wav",
        "status": "ok",
        "text": "My card is four one one one one one one one one one one one one one one one.",
        "segments": [
            {"start": 0.0, "end": 2.0, "text": "My card is four one one one one one one one"},
            {"start": 2.0, "end": 4.0, "text": "one one one one one one one one."},
        ],
    }
    out = redact.redact_transcript(record, redact.OUTPUTS)
    assert out["segments"][0]["text"] == "My card is [CARD]"
    assert out["segments"][1]["text"] == "[CARD]."
    assert out["text"] == "My card is [CARD] [CARD]."
    assert out[redact.REDACTED_FIELD] == "outputs"
    assert record["segments"][0]["text"].endswith("one")  # the input is left alone


def test_marked_failed_and_none_records_are_left_alone():
    text = "Call 415-867-5309."
    ok = {"source": "a", "status": "ok", "text": text, "segments": []}
    assert redact.redact_transcript(ok, redact.NONE) is ok
    failed = {"source": "a", "status": "failed", "error": "x", "text": text, "segments": []}
    assert redact.redact_transcript(failed, redact.OUTPUTS) is failed
    marked = redact.redact_transcript(ok, redact.BEFORE_LLM)
    assert marked["text"] == "Call [PHONE]."
    assert redact.redact_transcript(marked, redact.OUTPUTS) is marked


def test_summary_text_and_structured_strings_are_redacted():
    record = {
        "source": "a",
        "status": "ok",
        "summary": "Maria Lopez asked to be called on 415-867-5309.",
        "structured": {
            "summary": "Maria Lopez called.",
            "key_points": ["Her email is maria.lopez@example.com"],
            "action_items": [{"owner": "David Miller", "task": "call 415-867-5309", "due": None}],
            "decisions": [],
            "topics": ["billing"],
            "sentiment": "neutral",
            "language": "en",
        },
    }
    out = redact.redact_summary(record, redact.OUTPUTS)
    assert out["summary"] == "[PERSON] asked to be called on [PHONE]."
    s = out["structured"]
    assert s["key_points"] == ["Her email is [EMAIL]"]
    assert s["action_items"] == [{"owner": "[PERSON]", "task": "call [PHONE]", "due": None}]
    assert s["topics"] == ["billing"] and s["language"] == "en"


def test_unknown_mode_is_a_config_error():
    assert redact.check_mode("before_llm") == "before_llm"
    with pytest.raises(ConfigError, match="none, outputs, before_llm"):
        redact.check_mode("all")


def test_raw_output_inside_the_output_is_refused(tmp_path, capsys):
    from pipelines.cli import EXIT_CONFIG, main

    out = tmp_path / "out"
    argv = ["run-local", "--input", str(tmp_path), "--output", str(out)]
    assert main([*argv, "--raw-output", str(out / "raw")]) == EXIT_CONFIG
    assert "unredacted transcripts must be kept apart" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: not one of the modes
        main([*argv, "--redact", "everything"])
