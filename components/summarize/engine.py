"""Summarize transcript records through an OpenAI-compatible endpoint (plain Python, no KFP).

Every transcript record yields exactly one summary record, in input order:

- a failed transcript gives a failed summary that says why;
- an empty transcript (silence) gives an empty ``ok`` summary without any LLM call;
- a transcript within ``max_input_tokens`` is one request; a longer one is split on segment
  boundaries and map-reduced; a 400 for context overflow halves the budget and splits again;
- an LLM error after the allowed retries gives a failed summary with the reason;
- a transcript not summarized within ``summary_timeout_s`` (all its requests and retries
  together) gives a failed summary that says so and keeps the text streamed until then.

Deadlines: a stream that keeps sending is never cut (the client gives up only after
``read_timeout_s`` of silence); ``summary_timeout_s`` bounds the whole work on one
transcript (waits for a request slot, retries and map-reduce steps included), overshooting by
at most one token gap. A step of ``n`` transcripts therefore ends within
``ceil(n / max_concurrency) * (summary_timeout_s + read_timeout_s)``.
- with ``structured`` (the default) every request asks for one JSON object of
  :data:`components.summarize.structured.SCHEMA` (``response_format``), map steps included, and
  the reduce merges the parts' objects; an answer that breaks the schema is asked again once,
  then the transcript is summarized as plain text and ``structured_error`` says why (a
  well-formed transcript never fails for it).

Record timing: ``ttft_s`` is the time to first token of the request that wrote the summary
(the reduce request for a map-reduce), ``latency_s`` the wall time of the whole transcript,
retries and map steps included; token counts are sums over its requests.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from components.common import ledger
from components.common import redact as redaction
from components.common.errors import ConfigError
from components.common.ledger import SUMMARIES_DIR, Item
from components.common.records import FAILED, OK, SummaryRecord, read_jsonl, write_jsonl
from components.common.stats import percentile
from components.summarize.client import (
    ChatClient,
    ChatResult,
    ClientOptions,
    ContextOverflowError,
    DeadlineError,
    LLMError,
)
from components.summarize.prompts import (
    Kind,
    build_messages,
    label_summaries,
    material_budget,
    pack,
    transcript_pieces,
)
from components.summarize.structured import (
    RESPONSE_FORMAT,
    InvalidAnswer,
    as_text,
    parse_answer,
    worst_case_tokens,
)

log = logging.getLogger(__name__)

# Below this input budget a context overflow is reported instead of split further.
MIN_INPUT_TOKENS = 512
# The least room for material a request must leave after the prompt around it.
MIN_MATERIAL_TOKENS = 32
# Most nested map-reduce levels for one transcript (a guard; 2 or 3 are typical).
MAX_DEPTH = 8


@dataclass(frozen=True)
class SummarizeOptions:
    """Settings of the summarize step.

    ``max_input_tokens`` is the prompt budget of one request (system prompt, instructions and
    material): keep ``max_input_tokens + answer_tokens`` within the server's context
    (vLLM ``--max-model-len``). ``bytes_per_token`` sets the conservative token estimate.
    ``check_model`` asks ``GET /models`` first, so an unknown model is a configuration error.
    ``summary_timeout_s`` bounds the work on one transcript (every request, retry and
    map-reduce step of it); a slow stream inside it is not an error.
    ``structured`` asks for the structured summary (module docstring) besides the text; then
    ``client.structured_max_tokens`` must hold the longest object the schema allows
    (:func:`~components.summarize.structured.worst_case_tokens` at ``bytes_per_token``), so
    that a constrained answer closes within its budget.
    """

    client: ClientOptions = field(default_factory=ClientOptions)
    max_input_tokens: int = 6144
    bytes_per_token: float = 3.0
    check_model: bool = True
    summary_timeout_s: float = 900.0
    structured: bool = True

    def __post_init__(self) -> None:
        if self.client.max_concurrency < 1:
            raise ConfigError(
                f"max_concurrency must be at least 1, got {self.client.max_concurrency}"
            )
        if self.client.max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {self.client.max_retries}")
        if self.client.max_tokens < 1:
            raise ConfigError(f"max_tokens must be at least 1, got {self.client.max_tokens}")
        if self.max_input_tokens < MIN_INPUT_TOKENS:
            raise ConfigError(
                f"max_input_tokens must be at least {MIN_INPUT_TOKENS}, got {self.max_input_tokens}"
            )
        if self.summary_timeout_s <= 0:
            raise ConfigError(f"summary_timeout_s must be positive, got {self.summary_timeout_s}")
        if self.bytes_per_token <= 0:
            raise ConfigError(f"bytes_per_token must be positive, got {self.bytes_per_token}")
        longest = worst_case_tokens(self.bytes_per_token)
        if self.structured and self.client.structured_max_tokens < longest:
            raise ConfigError(
                f"structured_max_tokens={self.client.structured_max_tokens} is less than the "
                f"longest structured summary the schema allows (~{longest} tokens): raise it "
                "or turn structured summaries off"
            )
        room = material_budget(
            self.max_input_tokens, Kind.REDUCE, self.bytes_per_token, self.structured
        )
        if room < 2 * self.answer_tokens:
            name = (
                "max_tokens"
                if self.answer_tokens == self.client.max_tokens
                else "structured_max_tokens"
            )
            raise ConfigError(
                f"max_input_tokens={self.max_input_tokens} leaves {room} tokens for material, "
                f"less than two summaries of {name}={self.answer_tokens}: raise "
                f"max_input_tokens or lower {name}"
            )

    @property
    def answer_tokens(self) -> int:
        """The largest ``max_tokens`` a request may carry (text, or structured when on)."""
        if self.structured:
            return max(self.client.max_tokens, self.client.structured_max_tokens)
        return self.client.max_tokens


@dataclass
class SummaryResult(SummaryRecord):
    """A ``summaries.jsonl`` record plus how it was made.

    ``requests``: chat requests that succeeded; ``attempts``: HTTP attempts including retries;
    ``chunks``: transcript parts (1 without map-reduce, 0 without a call); ``finish_reason`` of
    the final request (``"length"``: cut at ``max_tokens``); ``cached_tokens``: prompt tokens
    the server reported as served from its prefix cache.
    """

    requests: int = 0
    attempts: int = 0
    chunks: int = 0
    finish_reason: str | None = None
    cached_tokens: int | None = None


class _Job:
    """The requests of one transcript: runs them and keeps their results."""

    def __init__(self, client: ChatClient, options: SummarizeOptions) -> None:
        self.client = client
        self.options = options
        self.structured = options.structured  # off after a structured answer failed twice
        self.results: list[ChatResult] = []
        self.chunks = 0
        self.rejected = 0  # attempts refused for context overflow
        self.bytes_per_token = options.bytes_per_token  # lowered by overflow answers
        self.deadline = time.monotonic() + options.summary_timeout_s
        self._lock = threading.Lock()

    def call(self, kind: Kind, material: str) -> ChatResult:
        """One request; a structured answer that breaks the schema is asked for once more.

        A structured result's ``text`` is its object as compact JSON. Raises
        :class:`InvalidAnswer` when the second structured answer is invalid too.
        """
        structured = self.structured
        messages = build_messages(kind, material, structured)
        result = self._chat(kind, messages, structured, first=True)
        if not structured:
            return result
        try:
            value = parse_answer(result.text, result.finish_reason)
        except InvalidAnswer as e:
            log.info("invalid structured answer, asking once more: %s", e)
            result = self._chat(kind, messages, structured, first=False)
            value = parse_answer(result.text, result.finish_reason)
        return replace(result, text=json.dumps(value, ensure_ascii=False))

    def _chat(
        self, kind: Kind, messages: list[dict[str, str]], structured: bool, first: bool
    ) -> ChatResult:
        """One chat request, recorded; a structured one the server refuses (400, not for the
        context) raises :class:`InvalidAnswer` so that the transcript falls back to text."""
        try:
            result = self.client.chat(
                messages, self.deadline, RESPONSE_FORMAT if structured else None
            )
        except LLMError as e:
            if not structured or e.status != 400 or isinstance(e, ContextOverflowError):
                raise
            raise InvalidAnswer(f"the server refused the response_format: {e}") from e
        with self._lock:
            self.results.append(result)
            self.chunks += kind is not Kind.REDUCE and first
        return result

    def summarize(self, pieces: list[str], kind: Kind, budget: int, depth: int = 0) -> ChatResult:
        """Summarize ``pieces`` (joined) within ``budget`` prompt tokens, map-reducing if needed."""
        if depth > MAX_DEPTH:
            raise _plan_error(f"map-reduce deeper than {MAX_DEPTH} levels: raise max_input_tokens")
        bpt = self.bytes_per_token
        sep = "\n\n" if kind is Kind.REDUCE else " "
        room = material_budget(budget, kind, bpt, self.structured)
        if room < MIN_MATERIAL_TOKENS:
            raise _plan_error(f"max_input_tokens={budget} leaves no room for the material")
        groups = pack(pieces, room, bpt, sep)
        if len(groups) == 1:
            material = sep.join(groups[0])
            try:
                return self.call(kind, material)
            except ContextOverflowError as e:
                smaller = self._after_overflow(e, kind, material, budget)
                log.info("context overflow at %d input tokens; planning for %d", budget, smaller)
                return self.summarize(pieces, kind, smaller, depth + 1)
        if kind is Kind.REDUCE and len(groups) == len(pieces):
            raise _plan_error(
                f"part summaries do not fit together in max_input_tokens={budget}: raise "
                "max_input_tokens or lower max_tokens"
            )
        map_kind = Kind.REDUCE if kind is Kind.REDUCE else Kind.PART
        workers = min(len(groups), self.options.client.max_concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="summarize-map") as pool:
            partials = list(
                pool.map(lambda g: self.summarize(g, map_kind, budget, depth + 1), groups)
            )
        labelled = label_summaries([p.text for p in partials])
        return self.summarize(labelled, Kind.REDUCE, budget, depth + 1)

    def _after_overflow(
        self, error: ContextOverflowError, kind: Kind, material: str, budget: int
    ) -> int:
        """The budget to plan with after an overflow 400; recalibrates the token estimate.

        With the server's counts, bytes per token become what this prompt really had (less
        10 %) and the budget at most the server's context less ``answer_tokens``; without them,
        or when that changes nothing, the budget halves.
        """
        with self._lock:
            self.rejected += error.attempts
            old_bpt, smaller = self.bytes_per_token, budget // 2
            if error.prompt_tokens and error.context_tokens:
                sent = sum(
                    len(m["content"].encode())
                    for m in build_messages(kind, material, self.structured)
                )
                self.bytes_per_token = min(old_bpt, 0.9 * sent / error.prompt_tokens)
                fits = min(budget, error.context_tokens - self.options.answer_tokens)
                if fits < budget or self.bytes_per_token < old_bpt:
                    smaller = fits
        if smaller < MIN_INPUT_TOKENS:
            raise _plan_error(
                f"{error}; no split fits below {MIN_INPUT_TOKENS} input tokens"
            ) from error
        return smaller


def _plan_error(message: str) -> LLMError:
    """An error of the engine's own planning: no request was sent for it."""
    error = LLMError(message)
    error.attempts = 0
    return error


def _summarize_one(
    client: ChatClient, options: SummarizeOptions, index: int, record: dict[str, Any]
) -> SummaryResult:
    """The summary record of one transcript record; never raises for bad input or LLM errors."""
    source = str(record.get("source") or f"<record {index} without source>")
    if record.get("status", OK) != OK:
        reason = record.get("error") or f"status {record.get('status')!r}"
        return SummaryResult.failed(source, f"transcript failed: {reason}")
    if not record.get("source"):
        return SummaryResult.failed(source, "transcript record has no source")
    try:
        pieces = transcript_pieces(record)
    except ValueError as e:
        return SummaryResult.failed(source, str(e))
    if not pieces:
        return SummaryResult(source=source, status=OK, model=options.client.model)
    job = _Job(client, options)
    start = time.perf_counter()
    structured_error = None
    try:
        try:
            final = job.summarize(pieces, Kind.WHOLE, options.max_input_tokens)
        except InvalidAnswer as e:
            structured_error = f"no structured summary, text summary instead: {e}"
            log.warning("%s: %s", source, structured_error)
            job.structured, job.chunks = False, 0
            final = job.summarize(pieces, Kind.WHOLE, options.max_input_tokens)
    except DeadlineError as e:
        log.warning("summary of %s stopped at summary_timeout_s: %s", source, e)
        return SummaryResult.failed(
            source,
            f"not summarized within summary_timeout_s={options.summary_timeout_s:g} s: {e}",
            summary=e.partial.strip(),
            model=options.client.model,
            latency_s=time.perf_counter() - start,
            requests=len(job.results),
            attempts=sum(r.attempts for r in job.results) + job.rejected + e.attempts,
            chunks=job.chunks,
            structured_error=structured_error,
        )
    except LLMError as e:
        log.warning("summary of %s failed: %s", source, e)
        return SummaryResult.failed(
            source,
            str(e),
            model=options.client.model,
            requests=len(job.results),
            attempts=sum(r.attempts for r in job.results) + job.rejected + e.attempts,
            chunks=job.chunks,
            structured_error=structured_error,
        )
    cached = [r.cached_tokens for r in job.results if r.cached_tokens is not None]
    value = json.loads(final.text) if job.structured else None
    summary = as_text(value) if value is not None else final.text.strip()
    return SummaryResult(
        source=source,
        status=OK if summary else FAILED,
        error=None if summary else "the model returned an empty summary",
        summary=summary,
        model=final.model or options.client.model,
        ttft_s=final.ttft_s,
        latency_s=time.perf_counter() - start,
        prompt_tokens=_total(r.prompt_tokens for r in job.results),
        completion_tokens=_total(r.completion_tokens for r in job.results),
        requests=len(job.results),
        attempts=sum(r.attempts for r in job.results) + job.rejected,
        chunks=job.chunks,
        finish_reason=final.finish_reason,
        cached_tokens=sum(cached) if cached else None,
        structured=value,
        structured_error=structured_error,
    )


def _total(values: Any) -> int | None:
    """Sum of the known values; ``None`` when the server reported none."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _needs_llm(record: dict[str, Any]) -> bool:
    """Whether a transcript record has text to summarize."""
    try:
        return record.get("status", OK) == OK and bool(transcript_pieces(record))
    except ValueError:
        return False


def _check_model(client: ChatClient, options: SummarizeOptions) -> None:
    """Raise :class:`ConfigError` when the endpoint is unusable or does not serve the model."""
    endpoint, model = options.client.endpoint, options.client.model
    try:
        served = client.list_models()
    except LLMError as e:
        if e.status == 404:
            log.warning("%s/models is not served; skipping the model check", endpoint)
            return
        if e.status in (401, 403):
            raise ConfigError(
                f"llm_endpoint {endpoint} refused the credentials: set {options.client.api_key_env}"
                f" (HTTP {e.status})"
            ) from e
        if e.retryable:  # down or overloaded for now: every record fails with the reason
            log.warning("llm_endpoint %s is not answering (%s); summaries will fail", endpoint, e)
            return
        raise ConfigError(f"llm_endpoint {endpoint} is not usable: {e}") from e
    if model not in served:
        raise ConfigError(f"llm_model {model!r} is not served by {endpoint}; it serves {served}")


def summarize_records(
    transcript_records: list[dict[str, Any]],
    options: SummarizeOptions,
    on_record: Callable[[SummaryResult], None] | None = None,
) -> list[SummaryResult]:
    """One summary record per transcript record, in order (see the module docstring).

    ``on_record`` is called (from worker threads) with each record as soon as it is made.
    """
    if not transcript_records:
        return []

    finished = itertools.count(1)

    def one(index: int, record: dict[str, Any]) -> SummaryResult:
        result = _summarize_one(client, options, index, record)
        if on_record is not None:
            on_record(result)
        log.info(
            "[%d/%d] %s: summary %s in %.1f s",
            next(finished),
            len(transcript_records),
            result.source.rsplit("/", 1)[-1],
            result.status,
            result.latency_s or 0.0,
        )
        return result

    with ChatClient(options.client) as client:
        if options.check_model and any(map(_needs_llm, transcript_records)):
            _check_model(client, options)
        workers = min(len(transcript_records), options.client.max_concurrency)
        with ThreadPoolExecutor(workers, thread_name_prefix="summarize") as pool:
            futures = [pool.submit(one, i, record) for i, record in enumerate(transcript_records)]
            return [f.result() for f in futures]


def summary_metrics(records: list[SummaryResult], wall_s: float) -> dict[str, float]:
    """KFP metrics of a summarize step; percentiles over the transcripts that made requests."""
    called = [r for r in records if r.status == OK and r.requests]
    completion = _total(r.completion_tokens for r in records) or 0
    values: dict[str, float | None] = {
        "files": len(records),
        "failures": sum(r.status == FAILED for r in records),
        "empty": sum(r.status == OK and not r.requests for r in records),
        "requests": sum(r.requests for r in records),
        "attempts": sum(r.attempts for r in records),
        "map_reduced": sum(r.chunks > 1 for r in records),
        "truncated": sum(r.finish_reason == "length" for r in records),
        "prompt_tokens": _total(r.prompt_tokens for r in records) or 0,
        "completion_tokens": completion,
        "cached_tokens": _total(r.cached_tokens for r in records) or 0,
        "ttft_p50_s": percentile((r.ttft_s for r in called), 50),
        "ttft_p95_s": percentile((r.ttft_s for r in called), 95),
        "latency_p50_s": percentile((r.latency_s for r in called), 50),
        "latency_p95_s": percentile((r.latency_s for r in called), 95),
        "wall_s": wall_s,
        "completion_tokens_per_s": completion / wall_s if wall_s > 0 else None,
    }
    return {k: float(v) for k, v in values.items() if v is not None}


def run_summarize_step(
    transcripts_path: str | Path,
    summaries_path: str | Path,
    options: SummarizeOptions,
    shard: Sequence[Item] = (),
    output_uri: str | None = None,
    reprocess: bool = False,
    redact: str = redaction.NONE,
) -> dict[str, float]:
    """Read ``transcripts.jsonl``, write ``summaries.jsonl``, return the step's metrics.

    With ``output_uri`` and the shard's items: an input whose ``ok`` summary is stored there
    at its current ETag is reused without a request (unless ``reprocess``: then every
    transcript is summarized again); every new summary is stored as soon as it is made;
    then the ledger marks each input whose transcript and summary are both ``ok`` as
    finished (the ledger entry is written last).

    ``redact`` (:mod:`components.common.redact`): unless ``none``, every summary is redacted
    before it is stored or written; with ``before_llm`` a transcript that is not redacted yet
    is redacted before any request.
    """
    start = time.perf_counter()
    transcripts = read_jsonl(transcripts_path)
    if redact == redaction.BEFORE_LLM:
        transcripts = [redaction.redact_transcript(t, redact) for t in transcripts]
    items = {it.source: it for it in shard} if output_uri else {}
    stored = [
        ledger.load_result(output_uri, SUMMARIES_DIR, items[t["source"]])
        if t.get("source") in items and t.get("status") == OK and not reprocess
        else None
        for t in transcripts
    ]

    published: dict[int, dict[str, Any]] = {}  # id of a new record → its redacted dict

    def publish(record: SummaryResult) -> dict[str, Any]:
        if id(record) not in published:
            published[id(record)] = redaction.redact_summary(record.to_dict(), redact)
        return published[id(record)]

    def keep(record: SummaryResult) -> None:
        if record.source in items:
            ledger.store_result(output_uri, SUMMARIES_DIR, items[record.source], publish(record))

    todo = [t for t, rec in zip(transcripts, stored, strict=True) if rec is None]
    fresh = iter(summarize_records(todo, options, on_record=keep))
    new: list[SummaryResult] = []
    records: list[dict[str, Any]] = []
    for rec in stored:
        if rec is None:
            new.append(next(fresh))
            records.append(publish(new[-1]))
        else:
            records.append({k: v for k, v in rec.items() if k != "etag"})
    write_jsonl(summaries_path, records)
    for transcript, summary in zip(transcripts, records, strict=True):
        both_ok = transcript.get("status") == OK == summary["status"]
        if both_ok and transcript.get("source") in items:
            ledger.mark_finished(output_uri, items[transcript["source"]])
    metrics = summary_metrics(new, time.perf_counter() - start)
    metrics["files"] = float(len(records))
    metrics["reused"] = float(len(records) - len(new))
    log.info("summarized %s", metrics)
    return metrics
