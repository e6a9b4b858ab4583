"""Faults a real server cannot produce on demand, injected by a small scripted HTTP server.

429 with Retry-After, 502/503/504, 500, dropped connections, stalled and cut streams,
malformed events, context overflow at every size. Checks: every transcript gets exactly one
summary record; retries happen only where they should; no request is sent more than
``max_retries + 1`` times.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from components.common.errors import ConfigError
from components.common.records import FAILED, OK
from components.summarize.client import (
    OBJECTIVE_HEADER,
    ChatClient,
    ClientOptions,
    ContextOverflowError,
    LLMError,
)
from components.summarize.engine import SummarizeOptions, summarize_records

MODEL = "fault-model"


@dataclass
class Reply:
    """What the scripted server answers to one chat request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None  # a JSON body for error answers
    events: list[str] | None = None  # SSE ``data:`` payloads (default: a good stream)
    stall_after: int | None = None  # stop writing (and hang) after this many events
    drop: bool = False  # close the connection without answering
    pause_after: tuple[int, float] | None = None  # (event index, seconds) to pause after it
    done: bool = True  # end with ``data: [DONE]``
    gap_s: float = 0.0  # pause before every event (a slow model)


def good_events(text: str = "A short summary.") -> list[str]:
    """A well-formed OpenAI stream: role, content in pieces, finish, usage."""
    words = text.split(" ")
    chunks = [{"choices": [{"index": 0, "delta": {"role": "assistant"}}]}]
    chunks += [
        {"choices": [{"index": 0, "delta": {"content": w if i == 0 else " " + w}}]}
        for i, w in enumerate(words)
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": len(words)}})
    return [json.dumps({"model": MODEL, **c}) for c in chunks]


class ScriptedServer:
    """An OpenAI-shaped HTTP server on 127.0.0.1 whose chat answers a test scripts."""

    def __init__(self, respond: Callable[[dict], Reply]) -> None:
        self.respond = respond
        self.chats: list[dict] = []  # every chat request: {"body", "headers", "t"}
        self.in_flight = 0
        self.peak_in_flight = 0
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def chats_for(self, marker: str) -> int:
        """How many chat requests carried ``marker`` in their last message."""
        return sum(marker in c["body"]["messages"][-1]["content"] for c in self.chats)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.chats.append(
                        {"body": body, "headers": dict(self.headers), "t": time.monotonic()}
                    )
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                self._left = False
                try:
                    self._answer(server.respond(body))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on the stream
                finally:
                    self._leave()

            def _leave(self) -> None:
                # Called before the byte that lets the client finish ([DONE]): once the
                # client has it, it may send its next request before this thread ends.
                if not self._left:
                    self._left = True
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, reply: Reply) -> None:
                if reply.drop:
                    self.close_connection = True
                    return
                if reply.status != 200:
                    self._json(reply.status, reply.body or {"error": {"message": "scripted"}},
                               reply.headers)  # fmt: skip
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                events = good_events() if reply.events is None else reply.events
                for i, data in enumerate(events):
                    if reply.stall_after is not None and i >= reply.stall_after:
                        server.release.wait(30)
                        self.close_connection = True
                        return
                    time.sleep(reply.gap_s)
                    self._chunk(f"data: {data}\n\n".encode())
                    if reply.pause_after and reply.pause_after[0] == i:
                        time.sleep(reply.pause_after[1])
                self._leave()
                if reply.done:
                    self._chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _json(self, status: int, obj: Any, headers: dict | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def sequence(*replies: Reply) -> Callable[[dict], Reply]:
    """Answer with ``replies`` in order, then keep repeating the last one."""
    lock, count = threading.Lock(), [0]

    def respond(_body: dict) -> Reply:
        with lock:
            i = min(count[0], len(replies) - 1)
            count[0] += 1
        return replies[i]

    return respond


def options(endpoint: str, structured: bool = False, **client: Any) -> SummarizeOptions:
    """Summarize options with fast backoff for tests (text summaries unless ``structured``:
    these scripted answers are text)."""
    settings = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "read_timeout_s": 5.0} | client
    return SummarizeOptions(
        ClientOptions(endpoint=endpoint, model=MODEL, **settings), structured=structured
    )


def transcript(source: str, text: str = "We agreed to ship on Friday.") -> dict:
    return {"source": source, "status": OK, "text": text, "segments": []}


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_status_is_retried_then_succeeds(scripted, status):
    server = scripted(sequence(Reply(status), Reply(status), Reply()))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=3))
    assert rec.status == OK, rec.error
    assert rec.summary == "A short summary."
    assert (rec.attempts, rec.requests, len(server.chats)) == (3, 1, 3)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500])
def test_other_errors_are_not_retried(scripted, status):
    server = scripted(sequence(Reply(status, body={"error": {"message": f"nope {status}"}})))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=5))
    assert rec.status == FAILED
    assert f"HTTP {status}" in rec.error and f"nope {status}" in rec.error
    assert len(server.chats) == 1 and rec.attempts == 1


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_never_more_than_max_retries(scripted, max_retries):
    server = scripted(sequence(Reply(503, body={"error": {"message": "no endpoint ready"}})))
    [rec] = summarize_records(
        [transcript("a.wav")], options(server.endpoint, max_retries=max_retries)
    )
    assert rec.status == FAILED and "HTTP 503" in rec.error and "no endpoint ready" in rec.error
    assert len(server.chats) == max_retries + 1 == rec.attempts


def test_retry_after_is_honoured(scripted):
    server = scripted(sequence(Reply(429, headers={"Retry-After": "1"}), Reply()))
    opts = options(server.endpoint, max_retries=2, backoff_max_s=5.0)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == OK and rec.attempts == 2
    # Jittered backoff alone would wait at most 0.01 s; the server asked for 1 s.
    assert server.chats[1]["t"] - server.chats[0]["t"] >= 0.95


def test_dropped_connection_is_retried(scripted):
    server = scripted(sequence(Reply(drop=True), Reply()))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=2))
    assert rec.status == OK and rec.attempts == 2 and len(server.chats) == 2


def test_refused_connection_fails_after_retries(scripted):
    server = scripted(sequence(Reply()))
    endpoint = server.endpoint
    server.close()  # nothing listens on the port any more
    opts = SummarizeOptions(options(endpoint, max_retries=2).client, check_model=False)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == FAILED and "connection" in rec.error
    assert rec.attempts == 3


def test_stalled_stream_times_out_and_is_retried(scripted):
    server = scripted(sequence(Reply(stall_after=2), Reply()))
    opts = options(server.endpoint, max_retries=1, read_timeout_s=0.5)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == OK and rec.summary == "A short summary."
    assert rec.attempts == 2 and len(server.chats) == 2


def test_slow_stream_that_keeps_sending_is_not_cut(scripted):
    """Tokens 0.3 s apart for longer than the silence limit: a slow stream, not a stall."""
    server = scripted(sequence(Reply(events=good_events("one two three four five six"), gap_s=0.3)))
    opts = options(server.endpoint, max_retries=2, read_timeout_s=1.0)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == OK and rec.summary == "one two three four five six"
    assert rec.latency_s > opts.client.read_timeout_s and len(server.chats) == 1


def test_token_drip_fails_at_the_transcript_budget_and_keeps_the_partial_text(scripted):
    """The "one token every 20 s" LLM, scaled down: it would stream for 400 s.

    Each gap is well under the silence limit, so only summary_timeout_s can end it: one
    request, no retry from zero, a failed record that names the bound and keeps the text.
    """
    drip = Reply(events=good_events(" ".join(f"w{i}" for i in range(2000))), gap_s=0.2)
    server = scripted(sequence(drip))
    opts = replace(options(server.endpoint, max_retries=3), summary_timeout_s=1.5)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == FAILED
    assert "not summarized within summary_timeout_s=1.5 s" in rec.error
    assert rec.summary.startswith("w0 w1") and len(server.chats) == 1


def test_retries_stop_at_the_transcript_budget(scripted):
    server = scripted(sequence(Reply(503, headers={"Retry-After": "1"})))
    opts = options(server.endpoint, max_retries=50, backoff_max_s=1.0)
    [rec] = summarize_records([transcript("a.wav")], replace(opts, summary_timeout_s=2.5))
    assert rec.status == FAILED and "summary_timeout_s=2.5 s" in rec.error
    assert "HTTP 503" in rec.error and 2 <= len(server.chats) <= 4


def test_stream_cut_before_done_is_retried(scripted):
    cut = good_events()[:3]  # no finish_reason, no [DONE]
    server = scripted(sequence(Reply(events=cut, done=False), Reply()))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=1))
    assert rec.status == OK and rec.summary == "A short summary." and rec.attempts == 2


def test_ttft_is_taken_at_the_first_token_not_at_the_end(scripted):
    """The server pauses 0.6 s after the first content event: TTFT must come before it.

    A client that buffered the stream would see the first token at the end (latency - TTFT
    near 0); half the pause is left as slack for a busy machine.
    """
    server = scripted(sequence(Reply(pause_after=(1, 0.6))))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint))
    assert rec.status == OK and rec.summary == "A short summary."
    assert rec.latency_s - rec.ttft_s >= 0.3


def test_malformed_event_fails_without_retry(scripted):
    server = scripted(sequence(Reply(events=['{"choices": [ {"delta": '])))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=3))
    assert rec.status == FAILED and "malformed stream event" in rec.error
    assert len(server.chats) == 1


def test_error_event_in_stream_fails(scripted):
    error = json.dumps({"error": {"code": 500, "message": "slot crashed"}})
    server = scripted(sequence(Reply(events=[error])))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=3))
    assert rec.status == FAILED and "slot crashed" in rec.error and len(server.chats) == 1


def test_empty_answer_is_a_failed_summary(scripted):
    blank = [json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]
    server = scripted(sequence(Reply(events=blank)))
    [rec] = summarize_records([transcript("a.wav")], options(server.endpoint, max_retries=3))
    assert rec.status == FAILED and "empty summary" in rec.error
    assert rec.requests == 1 and len(server.chats) == 1


def test_bad_endpoint_url_is_a_config_error():
    opts = SummarizeOptions(ClientOptions(endpoint="127.0.0.1:8000/v1", model=MODEL))
    with pytest.raises(ConfigError, match=r"llm_endpoint 127\.0\.0\.1:8000/v1"):
        summarize_records([transcript("a.wav")], opts)


def test_overflow_at_every_size_fails_with_bounded_requests(scripted):
    overflow = {"error": {"type": "exceed_context_size_error", "message": "too long"}}
    server = scripted(sequence(Reply(400, body=overflow)))
    opts = SummarizeOptions(
        ClientOptions(endpoint=server.endpoint, model=MODEL, max_retries=3),
        max_input_tokens=1024,
        structured=False,
    )
    [rec] = summarize_records([transcript("a.wav", "word " * 200)], opts)
    assert rec.status == FAILED and "exceed_context_size_error" in rec.error
    # 1024 -> 512 -> 256 input tokens, each a split of the same material; never a retry.
    assert 2 <= len(server.chats) <= 12 and rec.attempts == len(server.chats)


def test_overflow_error_is_typed():
    body = {"error": {"message": "This model's maximum context length is 4096 tokens."}}
    with pytest.raises(ContextOverflowError):
        raise_from_reply(Reply(400, body=body))
    with pytest.raises(LLMError) as info:
        raise_from_reply(Reply(400, body={"error": {"message": "bad temperature"}}))
    assert not isinstance(info.value, ContextOverflowError)


def test_overflow_counts_are_parsed():
    vllm = (
        "This model's maximum context length is 4096 tokens. However, you requested 5000 "
        "tokens (4744 in the messages, 256 in the completion)."
    )
    error = ContextOverflowError(vllm, status=400)
    assert (error.prompt_tokens, error.context_tokens) == (4744, 4096)
    newer = "maximum context length is 32768 tokens. However, your request has 40000 input tokens"
    error = ContextOverflowError(newer, status=400)
    assert (error.prompt_tokens, error.context_tokens) == (40000, 32768)
    error = ContextOverflowError("prompt is too long", status=400)
    assert (error.prompt_tokens, error.context_tokens) == (None, None)


def raise_from_reply(reply: Reply) -> None:
    server = ScriptedServer(sequence(reply))
    try:
        with ChatClient(ClientOptions(endpoint=server.endpoint, model=MODEL)) as client:
            client.chat([{"role": "user", "content": "x"}])
    finally:
        server.close()


def test_every_transcript_gets_exactly_one_record(scripted):
    """A batch mixing faults: one record per input, in input order, each ok or failed."""

    def respond(body: dict) -> Reply:
        text = body["messages"][-1]["content"]
        if "FAIL500" in text:
            return Reply(500)
        if "FLAKY" in text and server.chats_for("FLAKY") < 3:
            return Reply(503, headers={"Retry-After": "0"})
        if "BUSY" in text:
            return Reply(429)
        if "BROKEN" in text:
            return Reply(events=["not json"])
        return Reply()

    server = scripted(respond)
    batch = [
        transcript("ok-1.wav"),
        transcript("fail500.wav", "FAIL500"),
        transcript("flaky.wav", "FLAKY"),
        {"source": "bad-audio.wav", "status": FAILED, "error": "ffmpeg: invalid data"},
        transcript("silence.wav", ""),
        transcript("busy.wav", "BUSY"),
        transcript("broken.wav", "BROKEN"),
        {"status": OK, "text": "no source"},
        {"source": "weird.wav", "status": OK, "segments": "not a list"},
        transcript("ok-2.wav"),
    ]
    records = summarize_records(batch, options(server.endpoint, max_retries=2, max_concurrency=4))
    assert len(records) == len(batch)
    assert [r.source for r in records[:7]] == [b["source"] for b in batch[:7]]
    assert records[7].source == "<record 7 without source>"
    assert [r.status for r in records] == [
        OK, FAILED, OK, FAILED, OK, FAILED, FAILED, FAILED, FAILED, OK,
    ]  # fmt: skip
    assert all(r.error for r in records if r.status == FAILED)
    assert "ffmpeg: invalid data" in records[3].error
    assert records[4].summary == "" and records[4].requests == 0
    assert server.chats_for("FAIL500") == 1 and server.chats_for("BROKEN") == 1
    assert server.chats_for("FLAKY") == 3 and server.chats_for("BUSY") == 3


def test_concurrency_is_bounded(scripted):
    def respond(_body: dict) -> Reply:
        time.sleep(0.05)
        return Reply()

    server = scripted(respond)
    batch = [transcript(f"{i}.wav") for i in range(12)]
    records = summarize_records(batch, options(server.endpoint, max_concurrency=3))
    assert all(r.status == OK for r in records) and len(server.chats) == 12
    assert 1 <= server.peak_in_flight <= 3


def test_headers_objective_and_bearer(scripted, monkeypatch, caplog):
    monkeypatch.setenv("LLM_API_KEY", "sk-test-secret-123")
    server = scripted(sequence(Reply(503), Reply()))
    opts = options(server.endpoint, objective="asr-summarization", max_retries=1)
    [rec] = summarize_records([transcript("a.wav")], opts)
    assert rec.status == OK
    headers = {k.lower(): v for k, v in server.chats[-1]["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test-secret-123"
    assert headers[OBJECTIVE_HEADER] == "asr-summarization"
    assert server.chats[-1]["body"]["model"] == MODEL
    assert "sk-test-secret-123" not in caplog.text and "sk-test-secret-123" not in repr(opts)


def test_no_key_no_objective_sends_neither(scripted, monkeypatch):
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    server = scripted(sequence(Reply()))
    summarize_records([transcript("a.wav")], options(server.endpoint, objective=None))
    headers = {k.lower() for k in server.chats[0]["headers"]}
    assert "authorization" not in headers and OBJECTIVE_HEADER not in headers


def test_unknown_model_is_a_config_error(scripted):
    server = scripted(sequence(Reply()))
    opts = SummarizeOptions(ClientOptions(endpoint=server.endpoint, model="other-model"))
    with pytest.raises(ConfigError, match="llm_model 'other-model'"):
        summarize_records([transcript("a.wav")], opts)
    assert server.chats == []
