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
    shard: Optional[list[dict]] = None,  # noqa: UP045 (KFP does not read X | None)
    output_uri: str = "",
    llm_endpoint: str = "http://llm-d-inference-gateway-istio.llm-d.svc.cluster.local/v1",
    llm_model: str = "Qwen/Qwen2.5-7B-Instruct",
    max_tokens: int = 256,
    max_concurrency: int = 8,
    max_input_tokens: int = 6144,
    temperature: float = 0.0,
    request_timeout_s: float = 300.0,
    max_retries: int = 5,
    llm_objective: str = "asr-summarization",
):
    """Summarize every transcript with an LLM behind an llm-d inference gateway (OpenAI API).

    Summaries already stored under output_uri at the same ETag are reused without a request;
    new ones are stored one by one; then the ledger marks the inputs whose transcript and
    summary are both ok as finished.

    Args:
        transcripts: JSON Lines transcript records of one shard (transcripts.jsonl).
        shard: The shard's items from the plan ({source, name, etag, size}); with
            output_uri they key the stored summaries and the ledger.
        output_uri: Output prefix with the per-input summaries (summaries/<name>.json) and
            the ledger (_ledger/); empty: nothing is stored or reused.
        llm_endpoint: OpenAI-compatible base URL, ending in /v1 (the llm-d gateway).
        llm_model: Served model name sent in every request body.
        max_tokens: Most tokens a summary may have.
        max_concurrency: Most chat requests in flight at once.
        max_input_tokens: Prompt budget of one request; longer transcripts are map-reduced.
            Keep max_input_tokens + max_tokens within the server's context.
        temperature: Sampling temperature (0 for repeatable summaries).
        request_timeout_s: Longest one request attempt may take.
        max_retries: Retries of a request on 429/502/503/504 and connection errors.
        llm_objective: InferenceObjective for header x-gateway-inference-objective; empty: none.

    Returns:
        summaries: JSON Lines, one summary record per transcript (source, status, error,
            summary, model, ttft_s, latency_s, prompt_tokens, completion_tokens,
            step_started_at, step_finished_at).
        metrics: Requests, failures, reused summaries, TTFT and latency p50/p95, token counts,
            step_started_at_s, step_finished_at_s, step_seconds.
    """
    from components.common.ledger import Item
    from components.common.records import stamp_jsonl, step_metrics, utc_now
    from components.summarize.client import ClientOptions
    from components.summarize.engine import SummarizeOptions, run_summarize_step

    started_at = utc_now()
    client = ClientOptions(
        endpoint=llm_endpoint,
        model=llm_model,
        max_tokens=max_tokens,
        temperature=temperature,
        max_concurrency=max_concurrency,
        timeout_s=request_timeout_s,
        max_retries=max_retries,
        objective=llm_objective or None,
    )
    options = SummarizeOptions(client=client, max_input_tokens=max_input_tokens)
    items = [Item.from_dict(entry) for entry in shard or []]
    values = run_summarize_step(
        transcripts.path, summaries.path, options, items, output_uri or None
    )
    finished_at = utc_now()
    stamp_jsonl(summaries.path, started_at, finished_at)
    values |= step_metrics(started_at, finished_at)
    for name, value in values.items():
        metrics.log_metric(name, value)


summarize_op = lightweight(summarize)
