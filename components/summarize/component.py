"""KFP wrapper of :mod:`components.summarize.engine` (no ``from __future__``: KFP reads the types).

The defaults are literals because KFP copies this function's source into the task: they equal
``DEFAULT_ENDPOINT``, ``DEFAULT_MODEL`` and ``DEFAULT_OBJECTIVE`` of the client (a test checks).
"""

from typing import Optional

from kfp.dsl import Dataset, Input, Metrics, Output

from components.common.kfp_helpers import lightweight


def summarize(
    transcripts: Input[Dataset],
    summaries: Output[Dataset],
    metrics: Output[Metrics],
    shards: Optional[Input[Dataset]] = None,  # noqa: UP045 (KFP does not read X | None)
    shard_index: int = 0,
    output_uri: str = "",
    llm_endpoint: str = "http://llm-d-inference-gateway-istio.llm-d.svc.cluster.local/v1",
    llm_model: str = "Qwen/Qwen2.5-7B-Instruct",
    max_tokens: int = 256,
    structured_max_tokens: int = 1280,
    max_concurrency: int = 8,
    max_input_tokens: int = 6144,
    temperature: float = 0.0,
    summary_timeout_s: float = 900.0,
    token_timeout_s: float = 60.0,
    max_retries: int = 5,
    llm_objective: str = "asr-summarization",
    reprocess: bool = False,
    structured_summary: bool = True,
    redact: str = "outputs",
):
    """Summarize every transcript with an LLM behind an llm-d inference gateway (OpenAI API).

    Summaries already stored under output_uri at the same ETag are reused without a request;
    new ones are stored one by one; then the ledger marks the inputs whose transcript and
    summary are both ok as finished.

    Args:
        transcripts: JSON Lines transcript records of one shard (transcripts.jsonl).
        shards: The plan's shard lists (JSON Lines, one line {shard, items} per shard);
            with output_uri, this shard's items ({source, name, etag, size}) key the stored
            summaries and the ledger. Without it nothing is stored or reused.
        shard_index: Which shard of the plan this task summarizes (the loop's item).
        output_uri: Output prefix with the per-input summaries (summaries/<name>.json) and
            the ledger (_ledger/); empty: nothing is stored or reused.
        llm_endpoint: OpenAI-compatible base URL, ending in /v1 (the llm-d gateway).
        llm_model: Served model name sent in every request body.
        max_tokens: Most tokens a summary may have.
        structured_max_tokens: Most tokens of a structured (JSON) summary request; at least
            the longest object the schema allows (a check says so), so that it closes.
        max_concurrency: Most chat requests in flight at once.
        max_input_tokens: Prompt budget of one request; longer transcripts are map-reduced.
            Keep max_input_tokens + structured_max_tokens (max_tokens with
            structured_summary off) within the server's context.
        temperature: Sampling temperature (0 for repeatable summaries).
        summary_timeout_s: Longest the summary of one transcript may take, all its requests
            and retries together; past it the summary fails with the reason and keeps the
            text streamed so far. A stream that keeps sending is not cut before it.
        token_timeout_s: Longest silence between two tokens of an answer (and before the
            first) before the stream counts as stalled and is retried.
        max_retries: Retries of a request on 429/502/503/504 and connection errors.
        llm_objective: InferenceObjective for header x-gateway-inference-objective; empty: none.
        reprocess: Summarize every transcript again with these settings; stored summaries
            are not reused (each new one is still stored as soon as it is made).

        structured_summary: Also ask for a JSON summary (key points, action items, decisions,
            topics, sentiment, language) through response_format; false: text only.
        redact: Personal data: none, outputs (summaries redacted) or before_llm (transcripts
            redacted before any request, too).

    Returns:
        summaries: JSON Lines, one summary record per transcript (source, status, error,
            summary, model, ttft_s, latency_s, prompt_tokens, completion_tokens,
            structured, structured_error, step_started_at, step_finished_at).
        metrics: Requests, failures, reused summaries, TTFT and latency p50/p95, token counts,
            step_started_at_s, step_finished_at_s, step_seconds.
    """
    from components.common.records import stamp_jsonl, step_metrics, utc_now
    from components.common.redact import check_mode
    from components.common.shards import read_shard
    from components.summarize.client import ClientOptions
    from components.summarize.engine import SummarizeOptions, run_summarize_step

    started_at = utc_now()
    client = ClientOptions(
        endpoint=llm_endpoint,
        model=llm_model,
        max_tokens=max_tokens,
        structured_max_tokens=structured_max_tokens,
        temperature=temperature,
        max_concurrency=max_concurrency,
        read_timeout_s=token_timeout_s,
        max_retries=max_retries,
        objective=llm_objective or None,
    )
    options = SummarizeOptions(
        client=client,
        max_input_tokens=max_input_tokens,
        summary_timeout_s=summary_timeout_s,
        structured=structured_summary,
    )
    items = read_shard(shards.path, shard_index) if shards is not None else []
    values = run_summarize_step(
        transcripts.path,
        summaries.path,
        options,
        items,
        output_uri or None,
        reprocess,
        check_mode(redact),
    )
    finished_at = utc_now()
    stamp_jsonl(summaries.path, started_at, finished_at)
    values |= step_metrics(started_at, finished_at)
    for name, value in values.items():
        metrics.log_metric(name, value)


summarize_op = lightweight(summarize)
