"""What the structured summary costs: latency and tokens per transcript, text vs JSON schema.

Summarizes the reference texts of a test-audio folder (``manifest.jsonl``; default: the
suite's espeak-ng corpus, tests/fixtures/corpus.py) through the summarize engine twice,
``structured=False`` and ``structured=True``, against a real llama-server it starts (one
thread, one slot; ``--no-jinja`` unless ``--jinja``: see components/summarize/README.md), with
the product's ``max_tokens`` and ``structured_max_tokens`` unless given, and prints per mode
the latency p50/p95 of a transcript, prompt and completion tokens per transcript, requests,
fallbacks to text and answers cut at their budget, plus the load average before and after.

    python bench/structured_cost.py --llama-server BIN --gguf MODEL.gguf [--audio-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.records import read_jsonl
from components.common.stats import percentile
from components.summarize.client import ClientOptions
from components.summarize.engine import SummarizeOptions, summarize_records
from tests.fixtures import corpus, llm_server

HEADER = (
    "| mode | latency p50 (s) | latency p95 (s) | prompt tokens | completion tokens | "
    "requests | fell back to text | cut at budget |\n|---|---:|---:|---:|---:|---:|---:|---:|"
)
DEFAULTS = ClientOptions()


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", required=True)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--audio-dir", type=Path, help="default: the suite's corpus")
    parser.add_argument("--max-tokens", type=int, default=DEFAULTS.max_tokens)
    parser.add_argument("--structured-max-tokens", type=int, default=DEFAULTS.structured_max_tokens)
    parser.add_argument("--jinja", action="store_true", help="the GGUF's own chat template")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the texts per mode")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra llama-server argument, e.g. --server-arg=--no-repack (SmolLM2 here)",
    )
    args = parser.parse_args()
    audio_dir = args.audio_dir or corpus.cached_corpus()
    texts = [
        {"source": r["file"], "status": "ok", "text": r["text"], "segments": []}
        for r in read_jsonl(audio_dir / "manifest.jsonl")
    ]
    template = () if args.jinja else ("--no-jinja",)
    os.environ["LLAMA_SERVER_BIN"], os.environ["ASR_TEST_LLM_GGUF"] = args.llama_server, args.gguf
    llm_server._READY_TIMEOUT_S = 600.0  # a 100 MB model loads slowly on a busy machine
    with tempfile.TemporaryDirectory() as tmp:
        server = llm_server.start_llama_server(
            Path(tmp), ctx_size=4096, parallel=1, extra_args=(*template, *args.server_arg)
        )
        try:
            print(
                f"{len(texts)} transcripts x {args.repeat}, {Path(args.gguf).name}, max_tokens "
                f"{args.max_tokens}, structured_max_tokens {args.structured_max_tokens}, one "
                f"request at a time; load average {load()}\n"
            )
            print(HEADER)
            for structured in (False, True):
                client = ClientOptions(
                    endpoint=server.endpoint,
                    model=server.model,
                    max_tokens=args.max_tokens,
                    structured_max_tokens=args.structured_max_tokens,
                    max_concurrency=1,
                    objective=None,
                )
                opts = SummarizeOptions(client, structured=structured)
                records = [r for _ in range(args.repeat) for r in summarize_records(texts, opts)]
                n = len(records)
                print(
                    f"| {'json_schema' if structured else 'text'} | "
                    f"{percentile((r.latency_s for r in records), 50):.2f} | "
                    f"{percentile((r.latency_s for r in records), 95):.2f} | "
                    f"{sum(r.prompt_tokens or 0 for r in records) / n:.0f} | "
                    f"{sum(r.completion_tokens or 0 for r in records) / n:.0f} | "
                    f"{sum(r.requests for r in records) / n:.2f} | "
                    f"{sum(bool(r.structured_error) for r in records)} of {n} | "
                    f"{sum(r.finish_reason == 'length' for r in records)} of {n} |"
                )
            print(f"\nload average after: {load()}")
        finally:
            llm_server.stop_llama_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
