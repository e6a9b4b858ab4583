"""Structured summaries: the schema check, the retry and text fallback, map-reduce, real servers.

The invalid-answer paths use the scripted server of test_summarize_faults (a real llama-server
cannot be made to break its grammar on demand); schema-valid objects come from the real
llama-server with the tiny test GGUF (random word salad: the grammar alone makes the JSON
valid) and with the demo model SmolLM2 (``ASR_TEST_DEMO_GGUF``, which ``make test`` sets and
``make assets`` makes), which fills every field to its bound: with the default options each
object must close within ``structured_max_tokens``.
"""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from components.common.errors import ConfigError
from components.common.records import OK
from components.summarize.client import ClientOptions
from components.summarize.engine import SummarizeOptions, summarize_records
from components.summarize.structured import (
    SCHEMA,
    SCHEMA_NAME,
    InvalidAnswer,
    as_text,
    longest_object,
    parse_answer,
    worst_case_tokens,
)
from tests.fixtures.llm_server import start_llama_server, stop_llama_server
from tests.test_summarize_faults import Reply, good_events, options, transcript

GOOD = {
    "summary": "The customer asked for a refund; Anna will send it.",
    "key_points": ["Refund of 40 dollars"],
    "action_items": [{"owner": "Anna", "task": "send the refund", "due": "Friday"}],
    "decisions": ["refund approved"],
    "topics": ["refund"],
    "sentiment": "neutral",
    "language": "en",
}


def as_events(value: object) -> list[str]:
    return good_events(json.dumps(value))


def test_parse_answer_accepts_a_schema_object():
    assert parse_answer(json.dumps(GOOD), "stop") == GOOD
    assert (
        as_text(GOOD)
        == "The customer asked for a refund; Anna will send it.\n- Refund of 40 dollars"
    )


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        (json.dumps(GOOD), "length", "cut at its token budget"),
        ("Here is the summary: {", "stop", "not JSON"),
        (json.dumps(GOOD | {"sentiment": "angry"}), "stop", "at sentiment"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "topics"}), "stop", "'topics'"),
        (json.dumps(GOOD | {"action_items": [{"task": "x"}]}), "stop", "action_items/0"),
    ],
)
def test_parse_answer_says_why_an_answer_is_invalid(text, finish, reason):
    with pytest.raises(InvalidAnswer, match=reason):
        parse_answer(text, finish)


def test_longest_object_is_valid_and_fits_the_default_budget():
    longest = longest_object()
    assert not list(Draft202012Validator(SCHEMA).iter_errors(longest))
    assert len(longest["action_items"]) == SCHEMA["properties"]["action_items"]["maxItems"]
    assert len(longest["summary"]) == SCHEMA["properties"]["summary"]["maxLength"]
    chars = len(json.dumps(longest, indent=2))
    assert worst_case_tokens(3.0) == -(-chars // 3)
    assert worst_case_tokens(3.0) <= ClientOptions().structured_max_tokens
    SummarizeOptions()  # the defaults pass their own check


def test_structured_budget_below_the_longest_object_is_a_config_error():
    budget = worst_case_tokens(3.0) - 1
    with pytest.raises(ConfigError, match=f"structured_max_tokens={budget} is less"):
        SummarizeOptions(ClientOptions(structured_max_tokens=budget))
    SummarizeOptions(ClientOptions(structured_max_tokens=budget), structured=False)


def test_structured_and_text_requests_carry_their_own_budgets(scripted):
    def respond(body: dict) -> Reply:
        if "response_format" in body:
            return Reply(events=good_events("not json"))
        return Reply(events=good_events("A plain text summary."))

    server = scripted(respond)
    opts = options(server.endpoint, structured=True, max_tokens=100, structured_max_tokens=1500)
    [record] = summarize_records([transcript("a.wav")], opts)
    assert record.summary == "A plain text summary."
    assert [c["body"]["max_tokens"] for c in server.chats] == [1500, 1500, 100]


def test_structured_request_carries_the_json_schema(scripted):
    server = scripted(lambda body: Reply(events=as_events(GOOD)))
    [record] = summarize_records([transcript("a.wav")], options(server.endpoint, structured=True))
    assert record.status == OK
    assert record.structured == GOOD and record.structured_error is None
    assert record.summary == as_text(GOOD)
    [chat] = server.chats
    rf = chat["body"]["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["name"] == SCHEMA_NAME and rf["json_schema"]["schema"] == SCHEMA


def test_invalid_answer_is_asked_once_more(scripted):
    answers = iter([good_events("not json"), as_events(GOOD)])
    server = scripted(lambda body: Reply(events=next(answers)))
    [record] = summarize_records([transcript("a.wav")], options(server.endpoint, structured=True))
    assert record.status == OK and record.structured == GOOD
    assert len(server.chats) == record.requests == 2


def test_two_invalid_answers_fall_back_to_the_text_summary(scripted):
    def respond(body: dict) -> Reply:
        if "response_format" in body:
            return Reply(events=good_events(json.dumps(GOOD | {"sentiment": "furious"})))
        return Reply(events=good_events("A plain text summary."))

    server = scripted(respond)
    [record] = summarize_records([transcript("a.wav")], options(server.endpoint, structured=True))
    assert record.status == OK and record.error is None
    assert record.summary == "A plain text summary."
    assert record.structured is None
    assert "text summary instead" in record.structured_error
    assert "sentiment" in record.structured_error
    assert ["response_format" in c["body"] for c in server.chats] == [True, True, False]
    assert record.requests == 3 and record.chunks == 1


def test_server_refusing_response_format_falls_back_to_text(scripted):
    def respond(body: dict) -> Reply:
        if "response_format" in body:
            return Reply(400, body={"error": {"message": "Failed to initialize samplers"}})
        return Reply(events=good_events("Plain."))

    server = scripted(respond)
    [record] = summarize_records([transcript("a.wav")], options(server.endpoint, structured=True))
    assert record.status == OK and record.summary == "Plain." and record.structured is None
    assert "refused the response_format" in record.structured_error
    assert len(server.chats) == 2


def test_structured_off_sends_no_response_format(scripted):
    server = scripted(lambda body: Reply(events=good_events("Plain.")))
    opts = SummarizeOptions(options(server.endpoint, structured=True).client, structured=False)
    [record] = summarize_records([transcript("a.wav")], opts)
    assert record.summary == "Plain." and record.structured is None
    assert record.structured_error is None
    assert "response_format" not in server.chats[0]["body"]


def test_map_reduce_merges_the_structured_parts(scripted):
    part = GOOD | {"summary": "part", "topics": ["part topic"]}
    merged = GOOD | {"summary": "whole", "topics": ["part topic", "refund"]}

    def respond(body: dict) -> Reply:
        user = body["messages"][-1]["content"]
        return Reply(events=as_events(merged if "<part_summaries>" in user else part))

    server = scripted(respond)
    segments = [{"start": i, "end": i + 1, "text": f"Sentence number {i} " * 30} for i in range(40)]
    record_in = {"source": "long.wav", "status": OK, "text": "", "segments": segments}
    opts = SummarizeOptions(
        ClientOptions(endpoint=server.endpoint, model="fault-model", max_tokens=64),
        max_input_tokens=4096,
    )
    [record] = summarize_records([record_in], opts)
    assert record.status == OK and record.chunks > 1
    assert record.structured == merged
    reduces = [
        c for c in server.chats if "<part_summaries>" in c["body"]["messages"][-1]["content"]
    ]
    assert reduces and all("response_format" in c["body"] for c in server.chats)
    # The reduce step reads the parts' objects, numbered.
    assert '"part topic"' in reduces[-1]["body"]["messages"][-1]["content"]
    assert "Part 1:" in reduces[-1]["body"]["messages"][-1]["content"]


def _clip_transcripts(audio_manifest: dict[str, dict]) -> list[dict]:
    """One transcript record per test clip (its reference text)."""
    return [
        {"source": name, "status": OK, "text": rec["text"], "segments": []}
        for name, rec in sorted(audio_manifest.items())
    ]


def _check_every_clip(server, audio_manifest: dict[str, dict], **client: int) -> list:
    opts = SummarizeOptions(
        ClientOptions(endpoint=server.endpoint, model=server.model, objective=None, **client)
    )
    records = summarize_records(_clip_transcripts(audio_manifest), opts)
    assert len(records) == len(audio_manifest)
    validator = Draft202012Validator(SCHEMA)
    for record in records:
        assert record.status == OK, record.error
        assert record.structured_error is None, (record.source, record.structured_error)
        assert not list(validator.iter_errors(record.structured)), record.source
        assert record.summary == as_text(record.structured)
    return records


def test_tiny_model_gives_schema_valid_objects_for_every_clip(tmp_path, audio_manifest):
    # --no-jinja: with the tiny GGUF's template this llama.cpp build's Jinja chat parser
    # cannot set up the grammar ("Failed to initialize samplers"); the legacy path can.
    server = start_llama_server(tmp_path, ctx_size=8192, parallel=2, extra_args=("--no-jinja",))
    try:
        _check_every_clip(server, audio_manifest)
    finally:
        stop_llama_server(server)


def test_demo_model_gives_schema_valid_objects_for_every_clip(tmp_path, audio_manifest):
    """SmolLM2 (the model ``make demo`` serves), started as tools/llm_server.py starts it
    (Jinja chat template, ``--no-repack``, one thread, no polling), with the product's default
    options: every reference text of the test audio gets a schema-valid object, first time."""
    server = start_llama_server(
        tmp_path,
        ctx_size=8192,
        parallel=2,
        extra_args=("--no-repack", "--poll", "0"),
        model_env="ASR_TEST_DEMO_GGUF",
    )
    try:
        records = _check_every_clip(server, audio_manifest)
    finally:
        stop_llama_server(server)
    assert [r.requests for r in records] == [1] * len(records)
    assert {r.finish_reason for r in records} == {"stop"}
