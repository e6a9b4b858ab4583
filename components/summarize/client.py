"""Streaming OpenAI-API chat client for an llm-d inference gateway (or any compatible server).

``POST {endpoint}/chat/completions`` with ``"stream": true`` so that the time to first token
is measured on every request, ``GET {endpoint}/models`` to check the served model. Requests go
through one pooled :class:`requests.Session`; a semaphore bounds the requests in flight to
``max_concurrency`` however many threads call :meth:`ChatClient.chat`.

Retries (exponential backoff with jitter, ``Retry-After`` honoured up to ``backoff_max_s``)
happen only on 429/502/503/504, connection errors and timeouts: the gateway's endpoint picker
answers 429 when it sheds load and 503 when no endpoint is ready. Any other error status is
final; a 400 that says the prompt is over the model's context raises
:class:`ContextOverflowError` so that the caller can split the input.

Deadlines: a stream is given up only when it falls silent for ``read_timeout_s`` (no byte
between two tokens, or before the first): a slow stream whose tokens keep arriving is not an
error and is never restarted. The caller's optional ``deadline`` (the summarize engine's
budget for one transcript) bounds everything, retries included: past it, the request fails
with :class:`DeadlineError`, which keeps the text streamed so far and is not retried. The
check runs at every line of the stream, so the overshoot is at most one token gap.

The optional API key is read from the environment variable named by ``api_key_env``
(``LLM_API_KEY``, filled from a Secret) and sent as a Bearer token; it is never logged.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "http://llm-d-inference-gateway-istio.llm-d.svc.cluster.local/v1"
DEFAULT_MODEL = "Qwen/Qwen2.5-7B-Instruct"
DEFAULT_OBJECTIVE = "asr-summarization"
OBJECTIVE_HEADER = "x-gateway-inference-objective"
API_KEY_ENV = "LLM_API_KEY"
RETRY_STATUSES = frozenset({429, 502, 503, 504})

# Error texts of servers that reject a prompt longer than the context: llama.cpp
# (exceed_context_size_error), OpenAI (context_length_exceeded), vLLM ("This model's maximum
# context length is N tokens"), TGI and others ("too many tokens", "prompt is too long").
_CONTEXT_OVERFLOW = re.compile(
    r"exceed_context_size|context_length_exceeded|maximum context length|context window"
    r"|too many tokens|prompt is too long|input is too long",
    re.IGNORECASE,
)

# The server's token counts in an overflow answer: llama.cpp's JSON fields and message, vLLM's
# messages ("maximum context length is N tokens. However, you requested M tokens (P in the
# messages, C in the completion)" / "your request has P input tokens").
_PROMPT_COUNTS = (
    re.compile(r'"n_prompt_tokens"\s*:\s*(\d+)'),
    re.compile(r"request \((\d+) tokens\) exceeds"),
    re.compile(r"(\d+) in the messages"),
    re.compile(r"request has (\d+) input tokens"),
)
_CONTEXT_COUNTS = (
    re.compile(r'"n_ctx"\s*:\s*(\d+)'),
    re.compile(r"available context size \((\d+) tokens\)"),
    re.compile(r"maximum context length is (\d+) tokens"),
)

T = TypeVar("T")


@dataclass(frozen=True)
class ClientOptions:
    """Where and how to call the OpenAI-compatible endpoint.

    ``read_timeout_s`` bounds the silence between two bytes of an answer (before the first
    token too): a stalled stream is cut and retried, a slow one that keeps sending is not;
    ``max_retries`` is the number of retries after the first attempt, so a request is sent at
    most ``max_retries + 1`` times. ``max_tokens`` is the ``max_tokens`` of a text request,
    ``structured_max_tokens`` that of a request with a ``response_format``: a JSON object needs
    more room than a text summary, and one cut at its budget is no answer at all.
    """

    endpoint: str = DEFAULT_ENDPOINT
    model: str = DEFAULT_MODEL
    max_tokens: int = 256
    structured_max_tokens: int = 1280
    temperature: float = 0.0
    max_concurrency: int = 8
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    objective: str | None = DEFAULT_OBJECTIVE
    api_key_env: str = API_KEY_ENV


@dataclass
class ChatResult:
    """One completed chat request, measured on the client.

    ``ttft_s`` is the first non-empty content token minus the send time of the attempt that
    succeeded; ``latency_s`` runs from that send to the end of the stream. Token counts come
    from the server's ``usage`` (``None`` when it sends none).
    """

    text: str
    model: str | None
    finish_reason: str | None
    ttft_s: float | None
    latency_s: float
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    attempts: int

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: completion tokens over the time after the first token."""
        if not self.completion_tokens or self.ttft_s is None or self.latency_s <= self.ttft_s:
            return None
        return self.completion_tokens / (self.latency_s - self.ttft_s)


class LLMError(Exception):
    """A request failed; ``status`` is the HTTP status when there was one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.attempts = 1

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (after {self.attempts} attempts)" if self.attempts > 1 else text


class DeadlineError(LLMError):
    """The caller's deadline passed; ``partial`` is the answer text streamed until then."""

    def __init__(self, message: str, partial: str = "") -> None:
        super().__init__(message)
        self.partial = partial


class ContextOverflowError(LLMError):
    """The server rejected the prompt as longer than the model's context (HTTP 400).

    ``prompt_tokens`` and ``context_tokens`` are the server's own counts when its answer gives
    them (llama.cpp and vLLM do), else ``None``.
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        super().__init__(message, status=status)
        self.prompt_tokens = _first_count(_PROMPT_COUNTS, body or message)
        self.context_tokens = _first_count(_CONTEXT_COUNTS, body or message)


def _first_count(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    """The number the first matching pattern captures."""
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return int(match.group(1))
    return None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    retry: int,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
    rng: Callable[[float, float], float] = random.uniform,
) -> float:
    """Delay before retry number ``retry`` (1-based): jittered exponential, at least Retry-After.

    The exponential step ``base_s * 2**(retry-1)`` is capped at ``max_s`` and jittered into
    its upper half; a server's ``Retry-After`` is honoured up to ``max_s``.
    """
    step = min(max_s, base_s * 2 ** (retry - 1))
    delay = rng(step / 2, step)
    if retry_after is not None:
        delay = max(delay, min(retry_after, max_s))
    return delay


def _error_text(response: requests.Response) -> str:
    """A short readable reason from an error response's body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason or ""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        parts = [str(error[k]) for k in ("type", "code", "message") if error.get(k)]
        return ": ".join(dict.fromkeys(parts))[:300]
    return str(error)[:300]


def _status_error(response: requests.Response) -> LLMError:
    """The exception for a non-2xx response."""
    status = response.status_code
    reason = _error_text(response)
    message = f"HTTP {status} from {response.url}: {reason}"
    if status in (400, 413) and _CONTEXT_OVERFLOW.search(reason):
        return ContextOverflowError(message, status=status, body=response.text)
    return LLMError(
        message,
        status=status,
        retryable=status in RETRY_STATUSES,
        retry_after=parse_retry_after(response.headers.get("Retry-After")),
    )


def _stream_error(payload: Any) -> LLMError:
    """The exception for an ``error`` event inside an SSE stream."""
    text = json.dumps(payload)[:300]
    if _CONTEXT_OVERFLOW.search(text):
        return ContextOverflowError(f"error in stream: {text}")
    return LLMError(f"error in stream: {text}")


class ChatClient:
    """Thread-safe client; use as a context manager or call :meth:`close`."""

    def __init__(self, options: ClientOptions) -> None:
        self.options = options
        self._url = options.endpoint.rstrip("/")
        self._slots = threading.BoundedSemaphore(options.max_concurrency)
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=options.max_concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["Accept"] = "application/json, text/event-stream"
        api_key = os.environ.get(options.api_key_env)
        if api_key:
            self._session.headers["Authorization"] = f"Bearer {api_key}"
        if options.objective:
            self._session.headers[OBJECTIVE_HEADER] = options.objective

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the pooled connections."""
        self._session.close()

    def list_models(self) -> list[str]:
        """The model ids ``GET {endpoint}/models`` lists."""

        def attempt(_number: int) -> list[str]:
            timeout = (self.options.connect_timeout_s, self.options.read_timeout_s)
            response = self._session.get(f"{self._url}/models", timeout=timeout)
            with response:
                if response.status_code != 200:
                    raise _status_error(response)
                try:
                    return [m["id"] for m in response.json()["data"]]
                except (ValueError, KeyError, TypeError) as e:
                    raise LLMError(f"malformed /models answer from {self._url}: {e}") from e

        return self._with_retries(attempt)

    def chat(
        self,
        messages: list[dict[str, str]],
        deadline: float | None = None,
        response_format: dict[str, Any] | None = None,
    ) -> ChatResult:
        """Send one streamed chat completion and measure it; retries as documented above.

        ``deadline`` is a :func:`time.monotonic` time after which the request, retries
        included, raises :class:`DeadlineError` instead of going on. ``response_format``
        (OpenAI API, e.g. ``{"type": "json_schema", ...}``) is sent as is, with
        ``structured_max_tokens`` as the request's ``max_tokens``.
        """
        opts = self.options
        budget = opts.max_tokens if response_format is None else opts.structured_max_tokens
        body: dict[str, Any] = {
            "model": opts.model,
            "messages": messages,
            "max_tokens": budget,
            "temperature": opts.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if response_format is not None:
            body["response_format"] = response_format
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        return self._with_retries(
            lambda number: self._stream_once(payload, number, deadline), deadline
        )

    def _with_retries(self, attempt: Callable[[int], T], deadline: float | None = None) -> T:
        """Run ``attempt(number)`` (holding one concurrency slot) with the retry policy."""
        retries = 0
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineError("the deadline passed before the request was sent")
            try:
                with self._slots:
                    return attempt(retries + 1)
            except LLMError as e:
                error = e
            except (requests.ConnectionError, requests.Timeout) as e:
                # requests reports a read timeout inside a stream as a ConnectionError.
                error = LLMError(f"connection to {self._url} failed: {e}", retryable=True)
                error.__cause__ = e
            except requests.exceptions.ChunkedEncodingError as e:
                error = LLMError(f"stream from {self._url} was cut: {e}", retryable=True)
                error.__cause__ = e
            except requests.RequestException as e:  # a bad URL or the like: final
                error = LLMError(f"request to {self._url} failed: {e}")
                error.__cause__ = e
            error.attempts = retries + 1
            if not error.retryable or retries >= self.options.max_retries:
                raise error
            retries += 1
            delay = backoff_delay(
                retries, self.options.backoff_base_s, self.options.backoff_max_s, error.retry_after
            )
            if deadline is not None and time.monotonic() + delay >= deadline:
                raise DeadlineError(f"no time left for retry {retries}: {error}") from error
            log.warning(
                "LLM request failed (%s); retry %d/%d in %.2f s",
                error.status or "no answer",
                retries,
                self.options.max_retries,
                delay,
            )
            time.sleep(delay)

    def _stream_once(self, payload: bytes, number: int, deadline: float | None) -> ChatResult:
        """One attempt: send, then read the SSE stream to its end (or to ``deadline``)."""
        opts = self.options
        sent = time.perf_counter()
        read_timeout = opts.read_timeout_s
        if deadline is not None:  # a silence cannot outlast the deadline either
            read_timeout = max(0.01, min(read_timeout, deadline - time.monotonic()))
        response = self._session.post(
            f"{self._url}/chat/completions",
            data=payload,
            headers={"Content-Type": "application/json"},
            timeout=(opts.connect_timeout_s, read_timeout),
            stream=True,
        )
        with response:
            if response.status_code != 200:
                raise _status_error(response)
            content_type = response.headers.get("Content-Type", "")
            if "text/event-stream" not in content_type:
                raise LLMError(f"expected an SSE stream from {response.url}, got {content_type!r}")
            return self._read_events(response, sent, deadline, number)

    def _read_events(
        self, response: requests.Response, sent: float, deadline: float | None, number: int
    ) -> ChatResult:
        """Parse ``data:`` events up to ``[DONE]``; record TTFT at the first content token."""
        parts: list[str] = []
        ttft: float | None = None
        model = finish = usage = None
        done = False
        lines = response.iter_lines(chunk_size=4096)
        while True:
            try:
                line = next(lines, None)
            except requests.RequestException as e:  # silent past the read timeout, or cut
                if deadline is not None and time.monotonic() >= deadline:
                    raise self._late(parts, sent) from e
                raise
            if line is None:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise self._late(parts, sent)
            if not line.startswith(b"data:"):
                continue  # blank separators, comments (":"), event:/id:/retry: fields
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                break
            try:
                event = json.loads(data)
            except ValueError as e:
                raise LLMError(f"malformed stream event {data[:120]!r}: {e}") from e
            if not isinstance(event, dict):
                raise LLMError(f"malformed stream event {data[:120]!r}: not an object")
            if "error" in event:
                raise _stream_error(event["error"])
            model = model or event.get("model")
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if ttft is None:
                        ttft = time.perf_counter() - sent
                    parts.append(content)
                finish = choice.get("finish_reason") or finish
        if not done and finish is None:
            raise LLMError("stream ended before [DONE]", retryable=True)
        usage = usage or {}
        details = usage.get("prompt_tokens_details") or {}
        return ChatResult(
            text="".join(parts),
            model=model,
            finish_reason=finish,
            ttft_s=ttft,
            latency_s=time.perf_counter() - sent,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            cached_tokens=details.get("cached_tokens"),
            attempts=number,
        )

    @staticmethod
    def _late(parts: list[str], sent: float) -> DeadlineError:
        """The error for a deadline that passed while an answer streamed."""
        return DeadlineError(
            f"the deadline passed while the answer streamed ({len(parts)} pieces in "
            f"{time.perf_counter() - sent:.0f} s)",
            partial="".join(parts),
        )
