"""The structured summary: its JSON schema, the ``response_format`` that asks for it, checks.

Each summary record carries, besides the text summary, one object of :data:`SCHEMA`::

    {"summary": str, "key_points": [str], "action_items": [{"owner", "task", "due"}],
     "decisions": [str], "topics": [str], "sentiment": "negative"|"neutral"|"positive",
     "language": str}

``owner`` and ``due`` are ``null`` when the call does not say them. The schema goes to the
server as the OpenAI API's ``response_format`` (``{"type": "json_schema", ...}``): vLLM behind
llm-d and llama.cpp's ``llama-server`` both turn it into constrained decoding. Lengths and item
counts are bounded so that a constrained answer closes within a few hundred tokens. The answer
is still checked with ``jsonschema`` (a server may ignore ``response_format``, or cut the
answer at ``max_tokens``).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_NAME = "call_summary"

_TEXT = {"type": "string", "maxLength": 300}
_LIST = {"type": "array", "items": _TEXT, "maxItems": 6}

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
        "summary": {"type": "string", "minLength": 1, "maxLength": 800},
        "key_points": _LIST,
        "action_items": {
            "type": "array",
            "maxItems": 6,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["owner", "task", "due"],
                "properties": {
                    "owner": {"type": ["string", "null"], "maxLength": 80},
                    "task": {"type": "string", "minLength": 1, "maxLength": 300},
                    "due": {"type": ["string", "null"], "maxLength": 40},
                },
            },
        },
        "decisions": _LIST,
        "topics": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 6},
        "sentiment": {"enum": ["negative", "neutral", "positive"]},
        "language": {"type": "string", "minLength": 2, "maxLength": 12},
    },
}

#: The ``response_format`` of a chat request that asks for :data:`SCHEMA`.
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": SCHEMA},
}

_VALIDATOR = Draft202012Validator(SCHEMA)


class InvalidAnswer(ValueError):
    """The model's answer is not one object of :data:`SCHEMA`; the message says why."""


def parse_answer(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    """The structured summary in a model's answer, checked against :data:`SCHEMA`.

    Args:
        text: The answer's content.
        finish_reason: The request's finish reason (``"length"``: cut at ``max_tokens``).

    Returns:
        The object, as the model wrote it.

    Raises:
        InvalidAnswer: the answer was cut, is not JSON, or breaks the schema.
    """
    if finish_reason == "length":
        raise InvalidAnswer("the answer was cut at max_tokens before the JSON object closed")
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
