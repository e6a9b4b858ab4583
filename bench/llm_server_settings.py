"""Choose ``make demo``'s llama-server settings: decode speed per setting, idle and busy.

For every setting (threads, polling, slots) it starts llama-server with the demo model through
``tools/llm_server.py``, summarizes the reference transcripts of ``samples/`` (all at once, as
the summarize step does) and prints wall time and completion tokens per second. With
``--busy`` every setting is measured twice: once as the machine is, once with a competing
``yes > /dev/null`` process (one core busy), which is what made the demo time out. A
request unfinished at ``--cap-s`` counts the tokens it streamed (the server's tokenizer).

    python bench/llm_server_settings.py --bin BIN --gguf demo-smollm2.gguf --busy
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from components.summarize.client import ChatClient, ClientOptions, DeadlineError, LLMError
from components.summarize.prompts import Kind, build_messages
from tools import llm_server

ROOT = Path(__file__).resolve().parents[1]
# Every setting has --no-repack: without it this llama.cpp build segfaults loading SmolLM2's
# Q4_1 weights on the CI machines' CPUs (rc 139 in load_model, idle or busy).
SETTINGS = {
    "-t 2 (poll 50)": ["-t", "2", "--no-repack"],
    "-t 2 --poll 0": ["-t", "2", "--poll", "0", "--no-repack"],
    "-t 1 (poll 50)": ["-t", "1", "--no-repack"],
    "-t 1 --poll 0": ["-t", "1", "--poll", "0", "--no-repack"],
}


def measure(binary: Path, gguf: Path, args: list[str], max_tokens: int, cap_s: float) -> dict:
    """Start a server with ``args``, summarize every sample reference at once, stop it."""
    texts = [p.read_text() for p in sorted((ROOT / "samples").glob("*.txt"))]
    with tempfile.TemporaryDirectory() as tmp:
        pid_file = Path(tmp) / "llm.pid"
        start = [
            "start", "--bin", str(binary), "--model", str(gguf), "--alias", "bench",
            "--pid-file", str(pid_file), "--parallel", str(len(texts)), "--", *args,
        ]  # fmt: skip
        out = subprocess.run(
            [sys.executable, str(ROOT / "tools/llm_server.py"), *start],
            capture_output=True,
            text=True,
            check=True,
        )
        endpoint = out.stdout.strip()
        options = ClientOptions(
            endpoint=endpoint, model="bench", max_tokens=max_tokens, max_concurrency=len(texts)
        )
        deadline = time.monotonic() + cap_s
        try:
            with ChatClient(options) as client, ThreadPoolExecutor(len(texts)) as pool:
                began = time.perf_counter()

                def one(text: str) -> tuple[bool, int]:
                    """(finished, completion tokens); an unfinished answer's are counted."""
                    try:
                        result = client.chat(build_messages(Kind.WHOLE, text), deadline)
                    except DeadlineError as e:
                        return False, _count_tokens(endpoint, e.partial)
                    except LLMError:
                        return False, 0
                    return True, result.completion_tokens or 0

                answers = list(pool.map(one, texts))
                wall = time.perf_counter() - began
        finally:
            llm_server.main(["stop", "--pid-file", str(pid_file)])
    return {
        "requests": len(texts),
        "unfinished": sum(not finished for finished, _ in answers),
        "wall_s": wall,
        "tokens_per_s": sum(tokens for _, tokens in answers) / wall if wall else 0.0,
    }


def _count_tokens(endpoint: str, text: str) -> int:
    """Tokens of ``text`` by the server's own tokenizer (``POST /tokenize``)."""
    if not text:
        return 0
    url = endpoint.removesuffix("/v1") + "/tokenize"
    return len(requests.post(url, json={"content": text}, timeout=30).json()["tokens"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, required=True, help="llama-server binary")
    parser.add_argument("--gguf", type=Path, required=True, help="the demo GGUF")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--cap-s", type=float, default=150.0, help="give up a setting after")
    parser.add_argument("--busy", action="store_true", help="also measure with `yes` running")
    parser.add_argument("--only", nargs="*", help="setting names to measure (default: all)")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f} at start")
    print("| setting | machine | wall s | completion tokens/s | unfinished |")
    print("|---|---|---|---|---|")
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        for busy in (False, True) if args.busy else (False,):
            competitor = subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) if busy else None
            try:
                r = measure(args.bin, args.gguf, extra, args.max_tokens, args.cap_s)
            finally:
                if competitor:
                    competitor.kill()
                    competitor.wait()
            machine = "`yes` on one core" if busy else "as is"
            print(
                f"| `{name}` | {machine} | {r['wall_s']:.1f} | {r['tokens_per_s']:.1f} "
                f"| {r['unfinished']}/{r['requests']} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
