"""The OpenAI-API client against a real llama-server, plus its pure helpers."""

from __future__ import annotations

import email.utils
import threading
import time

import pytest
import requests

from components.summarize.client import (
    ChatClient,
    ClientOptions,
    ContextOverflowError,
    LLMError,
    backoff_delay,
    parse_retry_after,
)
from components.summarize.prompts import Kind, build_messages
from tests.fixtures.llm_server import start_llama_server, stop_llama_server

MESSAGES = build_messages(Kind.WHOLE, "Sales grew nine percent. The review moved to Friday.")


def client_for(server, **kwargs) -> ChatClient:
    settings = {"max_tokens": 16} | kwargs
    return ChatClient(ClientOptions(endpoint=server.endpoint, model=server.model, **settings))


# --- pure helpers ------------------------------------------------------------------------


def test_parse_retry_after():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after(future) <= 30
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert parse_retry_after(past) == 0.0


def test_backoff_grows_is_capped_and_honours_retry_after():
    upper = lambda low, high: high  # noqa: E731  (the jitter's largest draw)
    lower = lambda low, high: low  # noqa: E731
    assert [backoff_delay(n, 0.5, 4.0, rng=upper) for n in (1, 2, 3, 4, 5)] == [
        0.5, 1.0, 2.0, 4.0, 4.0,
    ]  # fmt: skip
    assert backoff_delay(3, 0.5, 4.0, rng=lower) == 1.0
    assert backoff_delay(1, 0.5, 4.0, retry_after=3.0, rng=upper) == 3.0
    assert backoff_delay(1, 0.5, 4.0, retry_after=60.0, rng=upper) == 4.0
    delays = {backoff_delay(2, 0.5, 4.0) for _ in range(20)}
    assert len(delays) > 1 and all(0.5 <= d <= 1.0 for d in delays)


# --- against llama-server ----------------------------------------------------------------


def test_list_models(llm_server):
    with client_for(llm_server) as client:
        assert llm_server.model in client.list_models()


def test_streamed_chat_measures_ttft_and_usage(llm_server):
    with client_for(llm_server, max_tokens=32) as client:
        result = client.chat(MESSAGES)
    assert result.text and result.model == llm_server.model
    assert 0 < result.ttft_s <= result.latency_s
    assert result.prompt_tokens > 50 and result.completion_tokens == 32
    assert result.finish_reason == "length"  # the tiny model never stops by itself
    assert result.tokens_per_s > 0 and result.attempts == 1


def test_stream_text_equals_the_non_streamed_answer(llm_server):
    """The SSE pieces reassemble into exactly the text of a plain (non-streamed) request."""
    with client_for(llm_server, max_tokens=24) as client:
        streamed = client.chat(MESSAGES).text
    plain = requests.post(
        f"{llm_server.endpoint}/chat/completions",
        json={"model": llm_server.model, "messages": MESSAGES, "max_tokens": 24, "temperature": 0},
        timeout=60,
    ).json()["choices"][0]["message"]["content"]
    assert streamed == plain


def test_identical_prefix_is_served_from_the_prefix_cache(llm_server):
    """Two transcripts, one prompt prefix: the second request reuses the cached prefix."""
    with client_for(llm_server, max_tokens=4, max_concurrency=1) as client:
        client.chat(build_messages(Kind.WHOLE, "first call: revenue grew in march"))
        second = client.chat(build_messages(Kind.WHOLE, "second call: the budget moved"))
    assert second.cached_tokens is not None
    assert second.cached_tokens > 0.5 * second.prompt_tokens


def test_eight_concurrent_requests(llm_server):
    results, errors = [], []
    with client_for(llm_server, max_concurrency=8) as client:

        def one(i: int) -> None:
            try:
                results.append(client.chat(build_messages(Kind.WHOLE, f"call {i} about march")))
            except Exception as e:  # collected for the assertion below
                errors.append(e)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(results) == 8
    assert all(r.text and r.ttft_s and r.completion_tokens == 16 for r in results)


def test_prompt_over_the_context_raises_context_overflow(llm_server_small_ctx):
    huge = build_messages(Kind.WHOLE, "budget review friday " * 600)
    client = client_for(llm_server_small_ctx, max_retries=3)
    with client, pytest.raises(ContextOverflowError) as info:
        client.chat(huge)
    assert info.value.status == 400 and info.value.attempts == 1
    assert info.value.context_tokens == 1024  # 2048 over 2 slots
    assert info.value.prompt_tokens > 1024


def test_api_key_is_sent_as_bearer(tmp_path, monkeypatch):
    server = start_llama_server(tmp_path, ctx_size=2048, parallel=1, api_key="sk-test-key-42")
    try:
        monkeypatch.delenv("LLM_API_KEY", raising=False)
        with client_for(server) as client, pytest.raises(LLMError) as info:
            client.list_models()
        assert info.value.status == 401
        monkeypatch.setenv("LLM_API_KEY", "sk-test-key-42")
        with client_for(server, max_tokens=4) as client:
            assert client.chat(MESSAGES).text
    finally:
        stop_llama_server(server)
