"""Benchmark the summarizer's OpenAI-API client: TTFT and throughput per concurrency level.

Against an endpoint (an llm-d gateway, vLLM, or llama.cpp's server) it sends ``--requests``
summary requests at each concurrency level (default 1, 4, 8), every one with the same prompt
prefix and a different transcript, and prints TTFT p50/p95, latency p50/p95, requests per
second and decode tokens per second. It then measures the client's own overhead per request
against a null server (a separate process that streams a canned answer at once): wall time
and client CPU time per request.

    python bench/summarize_latency.py --endpoint http://HOST/v1 --model NAME
    python bench/summarize_latency.py --llama-server BIN --gguf MODEL.gguf   # starts one
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common.stats import percentile
from components.summarize.client import ChatClient, ChatResult, ClientOptions
from components.summarize.prompts import Kind, build_messages
from tools.llm_server import free_port

TOOLS = Path(__file__).resolve().parents[1] / "tools"

WORDS = [
    "revenue",
    "grew",
    "nine",
    "percent",
    "in",
    "march",
    "the",
    "budget",
    "review",
    "moved",
    "to",
    "friday",
    "because",
    "the",
    "customer",
    "asked",
    "for",
    "a",
    "refund",
    "and",
    "support",
    "agreed",
    "to",
    "call",
    "back",
    "on",
    "monday",
    "with",
    "a",
    "fix",
]


def transcript(i: int, words: int) -> str:
    """A distinct transcript of ``words`` words (request ``i``)."""
    return f"Call {i}. " + " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(words))


def run_level(options: ClientOptions, concurrency: int, n: int, words: int, seed: int) -> dict:
    """Send ``n`` requests with ``concurrency`` in flight; summary figures of the level."""
    opts = ClientOptions(**{**options.__dict__, "max_concurrency": concurrency})
    messages = [build_messages(Kind.WHOLE, transcript(seed + i, words)) for i in range(n)]
    with ChatClient(opts) as client, ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        results: list[ChatResult] = list(pool.map(client.chat, messages))
        wall = time.perf_counter() - start
    rates = [r.tokens_per_s for r in results]
    return {
        "concurrency": concurrency,
        "requests": n,
        "ttft_p50_s": percentile((r.ttft_s for r in results), 50),
        "ttft_p95_s": percentile((r.ttft_s for r in results), 95),
        "latency_p50_s": percentile((r.latency_s for r in results), 50),
        "latency_p95_s": percentile((r.latency_s for r in results), 95),
        "requests_per_s": n / wall,
        "decode_tokens_per_s_p50": percentile(rates, 50),
        "prompt_tokens_mean": sum(r.prompt_tokens or 0 for r in results) / n,
        "cached_tokens_mean": sum(r.cached_tokens or 0 for r in results) / n,
    }


def _null_server(port: int, tokens: int) -> None:
    """Serve ``/chat/completions`` as an immediate stream of ``tokens`` content chunks."""
    events = [{"choices": [{"index": 0, "delta": {"content": " word"}}]}] * tokens
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]})
    events.append({"choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": tokens}})
    body = b"".join(
        b"data: " + json.dumps({"model": "null", **e}).encode() + b"\n\n" for e in events
    )
    body += b"data: [DONE]\n\n"
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(chunked)

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def client_overhead(n: int, words: int, tokens: int) -> dict:
    """Client wall and CPU time per request against the null server (one in flight)."""
    port = free_port()
    server = multiprocessing.Process(target=_null_server, args=(port, tokens), daemon=True)
    server.start()
    opts = ClientOptions(endpoint=f"http://127.0.0.1:{port}/v1", model="null", max_concurrency=1)
    try:
        _wait_ready(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close())
        messages = [build_messages(Kind.WHOLE, transcript(i, words)) for i in range(n)]
        with ChatClient(opts) as client:
            client.chat(messages[0])  # warm the connection pool
            wall, cpu = time.perf_counter(), time.process_time()
            for m in messages:
                client.chat(m)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        server.terminate()
        server.join()
    return {
        "requests": n,
        "stream_chunks": tokens + 3,
        "wall_ms_per_request": 1000 * wall / n,
        "client_cpu_ms_per_request": 1000 * cpu / n,
    }


def _wait_ready(probe: Any, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            probe()
            return
        except (OSError, requests.RequestException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def start_llama_server(args: argparse.Namespace, pid_file: Path) -> str:
    """Start llama-server through ``tools/llm_server.py`` (the demo's launcher); its endpoint."""
    started = subprocess.run(
        [sys.executable, str(TOOLS / "llm_server.py"), "start", "--bin", args.llama_server,
         "--model", args.gguf, "--alias", args.model, "--pid-file", str(pid_file),
         "--ctx-size", str(args.ctx), "--parallel", str(args.parallel),
         "--threads", str(args.threads)],
        check=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return started.stdout.strip()


def stop_llama_server(pid_file: Path) -> None:
    """Stop the server that ``start_llama_server`` started."""
    subprocess.run(
        [sys.executable, str(TOOLS / "llm_server.py"), "stop", "--pid-file", str(pid_file)],
        check=True,
    )


def markdown(levels: list[dict], overhead: dict, load: tuple[float, float]) -> str:
    """The figures as Markdown tables."""
    lines = [
        f"Load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, "
        f"on {os.cpu_count()} CPUs.",
        "",
        "| concurrency | requests | TTFT p50 (s) | TTFT p95 (s) | latency p50 (s) "
        "| latency p95 (s) | requests/s | decode tok/s p50 | cached prompt tokens |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in levels:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['ttft_p50_s']:.3f} | "
            f"{r['ttft_p95_s']:.3f} | {r['latency_p50_s']:.3f} | {r['latency_p95_s']:.3f} | "
            f"{r['requests_per_s']:.2f} | {r['decode_tokens_per_s_p50'] or 0:.0f} | "
            f"{r['cached_tokens_mean']:.0f} of {r['prompt_tokens_mean']:.0f} |"
        )
    lines += [
        "",
        f"Client overhead ({overhead['requests']} requests against a null server, "
        f"{overhead['stream_chunks']} SSE events each): "
        f"{overhead['wall_ms_per_request']:.2f} ms wall, "
        f"{overhead['client_cpu_ms_per_request']:.2f} ms client CPU per request.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="OpenAI-compatible base URL ending in /v1")
    parser.add_argument("--model", default="bench-model")
    parser.add_argument("--llama-server", help="start this llama-server binary instead")
    parser.add_argument("--gguf", help="GGUF model for --llama-server")
    parser.add_argument("--ctx", type=int, default=16384, help="llama-server total context")
    parser.add_argument("--parallel", type=int, default=4, help="llama-server slots")
    parser.add_argument("--threads", type=int, default=1, help="llama-server threads (-t)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--requests", type=int, default=16, help="requests per level")
    parser.add_argument("--words", type=int, default=300, help="words per transcript")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--overhead-requests", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    load_start = os.getloadavg()[0]
    pid_file = Path(tempfile.mkdtemp()) / "llama-server.pid"
    if args.llama_server:
        endpoint = start_llama_server(args, pid_file)
    elif args.endpoint:
        endpoint = args.endpoint
    else:
        parser.error("give --endpoint or --llama-server with --gguf")
    try:
        options = ClientOptions(
            endpoint=endpoint, model=args.model, max_tokens=args.max_tokens, objective=None
        )
        with ChatClient(options) as client:  # warm-up: load, first prompt-cache fill
            client.chat(build_messages(Kind.WHOLE, transcript(-1, args.words)))
        levels = [
            run_level(options, c, args.requests, args.words, seed=1000 * c)
            for c in args.concurrency
        ]
    finally:
        if args.llama_server:
            stop_llama_server(pid_file)
    overhead = client_overhead(args.overhead_requests, args.words, args.max_tokens)
    load = (load_start, os.getloadavg()[0])
    print(markdown(levels, overhead, load))
    if args.json:
        figures = {"levels": levels, "overhead": overhead, "load_average": load}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
