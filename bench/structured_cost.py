"""What the structured summary costs: latency and tokens per transcript, text vs JSON schema.

Summarizes the reference texts of a test-audio folder (``manifest.jsonl``) through the
summarize engine twice, ``structured=False`` and ``structured=True``, against a real
llama-server it starts (``--no-jinja``: see components/summarize/README.md), and prints per
mode the latency p50/p95 of a transcript, prompt and completion tokens per transcript,
requests and fallbacks to text.

    python bench/structured_cost.py --llama-server BIN --gguf MODEL.gguf --audio-dir DIR
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
from tests.fixtures import llm_server

HEADER = (
    "| mode | latency p50 (s) | latency p95 (s) | prompt tokens | completion tokens | "
    "requests | fell back to text |\n|---|---:|---:|---:|---:|---:|---:|"
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama-server", required=True)
    parser.add_argument("--gguf", required=True)
    parser.add_argument("--audio-dir", type=Path, required=True)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2, help="passes over the texts per mode")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        help="extra llama-server argument, e.g. --server-arg=--no-repack (SmolLM2 here)",
    )
    args = parser.parse_args()
    texts = [
        {"source": r["file"], "status": "ok", "text": r["text"], "segments": []}
        for r in read_jsonl(args.audio_dir / "manifest.jsonl")
    ]
    os.environ["LLAMA_SERVER_BIN"], os.environ["ASR_TEST_LLM_GGUF"] = args.llama_server, args.gguf
    llm_server._READY_TIMEOUT_S = 600.0  # a 100 MB model loads slowly on a busy machine
    with tempfile.TemporaryDirectory() as tmp:
        server = llm_server.start_llama_server(
            Path(tmp), ctx_size=4096, parallel=1, extra_args=("--no-jinja", *args.server_arg)
        )
        try:
            print(
                f"{len(texts)} transcripts x {args.repeat}, {Path(args.gguf).name}, "
                f"max_tokens {args.max_tokens}, one request at a time\n"
            )
            print(HEADER)
            for structured in (False, True):
                client = ClientOptions(
                    endpoint=server.endpoint,
                    model=server.model,
                    max_tokens=args.max_tokens,
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
                    f"{sum(bool(r.structured_error) for r in records)} of {n} |"
                )
        finally:
            llm_server.stop_llama_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
