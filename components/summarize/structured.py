"""The structured summary: its JSON schema, the ``response_format`` that asks for it, checks.

Each summary record carries, besides the text summary, one object of :data:`SCHEMA`::

    {"summary": str, "key_points": [str], "action_items": [{"owner", "task", "due"}],
     "decisions": [str], "topics": [str], "sentiment": "negative"|"neutral"|"positive",
     "language": str}

``owner`` and ``due`` are ``null`` when the call does not say them. The schema goes to the
server as the OpenAI API's ``response_format`` (``{"type": "json_schema", ...}``): vLLM behind
llm-d and llama.cpp's ``llama-server`` both turn it into constrained decoding. The answer is
still checked with ``jsonschema`` (a server may ignore ``response_format``, or cut the answer
at its token budget).

Every string has a ``maxLength`` and every list a ``maxItems``, so that the longest object the
schema allows (:func:`longest_object`, :func:`worst_case_tokens`) fits the structured request's
token budget (``ClientOptions.structured_max_tokens``; ``SummarizeOptions`` checks it): under
the grammar a constrained answer must then close before the budget ends, whatever the model
writes. The bounds matter: a small model (SmolLM2 135M, the demo model) fills every string to
its ``maxLength`` and every list to its ``maxItems`` (bench/RESULTS.md). They are the
instructions' limits too (:data:`LIMITS`), so a capable model is told them and is not cut off
mid-sentence.
"""

from __future__ import annotations

import json
import math
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_NAME = "call_summary"

SUMMARY_CHARS = 400  #: the summary paragraph
ITEM_CHARS = 120  #: one key point, decision or task
OWNER_CHARS, DUE_CHARS, TOPIC_CHARS, LANGUAGE_CHARS = 40, 30, 30, 12
MAX_ITEMS = 5  #: items of each list

#: The bounds in words, for the instructions (prompts.py).
LIMITS = (
    f"summary at most {SUMMARY_CHARS} characters; at most {MAX_ITEMS} key_points, "
    f"action_items, decisions and topics; a key point, decision or task at most {ITEM_CHARS} "
    f"characters, a topic at most {TOPIC_CHARS}"
)

_TEXT = {"type": "string", "maxLength": ITEM_CHARS}
_LIST = {"type": "array", "items": _TEXT, "maxItems": MAX_ITEMS}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "summary",
        "key_points",
        "action_items",
        "decisions",
        "topics",
        "sentiment",
        "language",
    ],
    "properties": {
        "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_CHARS},
        "key_points": _LIST,
        "action_items": {
            "type": "array",
            "maxItems": MAX_ITEMS,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["owner", "task", "due"],
                "properties": {
                    "owner": {"type": ["string", "null"], "maxLength": OWNER_CHARS},
                    "task": {"type": "string", "minLength": 1, "maxLength": ITEM_CHARS},
                    "due": {"type": ["string", "null"], "maxLength": DUE_CHARS},
                },
            },
        },
        "decisions": _LIST,
        "topics": {
            "type": "array",
            "items": {"type": "string", "maxLength": TOPIC_CHARS},
            "maxItems": MAX_ITEMS,
        },
        "sentiment": {"enum": ["negative", "neutral", "positive"]},
        "language": {"type": "string", "minLength": 2, "maxLength": LANGUAGE_CHARS},
    },
}

#: The ``response_format`` of a chat request that asks for :data:`SCHEMA`.
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": SCHEMA},
}

_VALIDATOR = Draft202012Validator(SCHEMA)


def longest_object(schema: dict[str, Any] = SCHEMA) -> Any:
    """The longest value ``schema`` allows: every list at ``maxItems``, every string (a nullable
    one too) at ``maxLength``, the longest ``enum`` member. Covers the keywords :data:`SCHEMA`
    uses."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)))
    kind = schema["type"]
    if isinstance(kind, list):  # ["string", "null"]: the string is the longer
        kind = "string" if "string" in kind else kind[0]
    if kind == "object":
        return {k: longest_object(v) for k, v in schema["properties"].items()}
    if kind == "array":
        return [longest_object(schema["items"])] * schema["maxItems"]
    if kind == "string":
        return "x" * schema["maxLength"]
    raise ValueError(f"no longest value for a schema of type {kind!r}")


def worst_case_tokens(chars_per_token: float, schema: dict[str, Any] = SCHEMA) -> int:
    """Tokens of the longest answer ``schema`` allows, pretty-printed (2-space indent, as small
    models write it), at ``chars_per_token`` (the engine's conservative ``bytes_per_token``;
    whitespace beyond that indent, escapes and scripts of more than one token a character are
    not counted)."""
    chars = len(json.dumps(longest_object(schema), indent=2, ensure_ascii=False))
    return math.ceil(chars / chars_per_token)


class InvalidAnswer(ValueError):
    """The model's answer is not one object of :data:`SCHEMA`; the message says why."""


def parse_answer(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """The structured summary in a model's answer, checked against :data:`SCHEMA`.

    Args:
        text: The answer's content.
        finish_reason: The request's finish reason (``"length"``: cut at its token budget).

    Returns:
        The object, as the model wrote it.

    Raises:
        InvalidAnswer: the answer was cut, is not JSON, or breaks the schema.
    """
    if finish_reason == "length":
        raise InvalidAnswer(
            "the answer was cut at its token budget (structured_max_tokens) before the JSON "
            "object closed"
        )
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidAnswer(f"the answer is not JSON: {e}") from e
    error = next(iter(sorted(_VALIDATOR.iter_errors(value), key=lambda e: list(e.path))), None)
    if error is not None:
        where = "/".join(map(str, error.absolute_path)) or "the object"
        raise InvalidAnswer(f"the answer breaks the schema at {where}: {error.message[:200]}")
    return value


def as_text(value: dict[str, Any]) -> str:
    """The text summary of a structured one: its paragraph, then its key points as bullets."""
    lines = [value["summary"].strip()]
    lines += [f"- {point.strip()}" for point in value["key_points"] if point.strip()]
    return "\n".join(lines)
