"""Start and stop a local llama.cpp ``llama-server`` (OpenAI-compatible API) for ``make demo``.

    python tools/llm_server.py start --bin BIN --model M.gguf --alias NAME --pid-file F
                                     [--port 0] [--log F.log] [-- EXTRA_SERVER_ARGS...]
    python tools/llm_server.py stop --pid-file F

``start`` runs the server on 127.0.0.1 in its own session, waits until ``GET /v1/models``
answers 200, writes the PID file and prints the endpoint (``http://127.0.0.1:PORT/v1``) as the
only line on stdout. ``--port 0`` picks a free port. A server that the PID file names and that
still answers is reused.

Threads and polling are chosen for a small shared machine, by measurement
(``bench/llm_server_settings.py``, figures in ``bench/RESULTS.md``): one generation thread
(``--threads 1``), as two threads wait for each other at every step and crawl (20x slower,
polling or not) once another process takes a core; it sleeps instead of spinning while it
waits for work (``--poll 0``). Weight
repacking is off (``--no-repack``): with it this llama.cpp build crashes loading SmolLM2's
Q4_1 weights on the CI machines' CPUs.

``stop`` ends the server that the PID file names (SIGTERM, then SIGKILL after 10 s) and
removes the PID file; it does nothing when there is none. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/models", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def running(pid: int) -> bool:
    """True when ``pid`` is a live llama-server (not a reused PID of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"llama-server" in cmdline.split(b"\0", 1)[0]


def read_pid_file(pid_file: Path) -> dict | None:
    try:
        return json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return None


def start(args: argparse.Namespace) -> int:
    state = read_pid_file(args.pid_file)
    if state and running(state["pid"]) and answers(state["endpoint"]):
        print(state["endpoint"])
        return 0
    port = args.port or free_port()
    endpoint = f"http://127.0.0.1:{port}/v1"
    log_path = args.log or args.pid_file.with_suffix(".log")
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    command = [
        str(args.bin),
        "-m",
        str(args.model),
        "-a",
        args.alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "-c",
        str(args.ctx_size),
        "-np",
        str(args.parallel),
        "-t",
        str(args.threads),
        "--poll",
        str(args.poll),
        "--no-repack",
        "--no-webui",
        *extra,
    ]
    args.pid_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    args.pid_file.write_text(json.dumps({"pid": server.pid, "endpoint": endpoint}))
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not answers(endpoint):
        if server.poll() is not None or time.monotonic() > deadline:
            stop_pid(server.pid)
            args.pid_file.unlink(missing_ok=True)
            tail = log_path.read_text(errors="replace").splitlines()[-20:]
            print(
                f"llama-server did not become ready (log {log_path}):",
                *tail,
                sep="\n",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.2)
    print(
        f"llama-server {args.alias} ready at {endpoint} (PID {server.pid}, log {log_path})",
        file=sys.stderr,
    )
    print(endpoint)
    return 0


def stop_pid(pid: int) -> None:
    if not running(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(pid):
        os.kill(pid, signal.SIGKILL)


def stop(args: argparse.Namespace) -> int:
    state = read_pid_file(args.pid_file)
    if state:
        stop_pid(state["pid"])
        print(f"stopped llama-server (PID {state['pid']})", file=sys.stderr)
    args.pid_file.unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("start", help="start llama-server and print its endpoint")
    up.add_argument("--bin", type=Path, required=True, help="the llama-server binary")
    up.add_argument("--model", type=Path, required=True, help="the GGUF model")
    up.add_argument("--alias", required=True, help="the model name the API serves")
    up.add_argument("--pid-file", type=Path, required=True)
    up.add_argument("--port", type=int, default=0, help="0 picks a free port")
    up.add_argument("--log", type=Path, help="server log (default: PID file with .log)")
    up.add_argument("--ctx-size", type=int, default=4 * 4096, help="total, split over slots")
    up.add_argument("--parallel", type=int, default=4, help="parallel slots")
    up.add_argument("--threads", type=int, default=1, help="generation threads")
    up.add_argument(
        "--poll", type=int, default=0, help="0: threads sleep while they wait (0-100: spin)"
    )
    up.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more llama-server args")
    up.set_defaults(run=start)
    down = commands.add_parser("stop", help="stop the server the PID file names")
    down.add_argument("--pid-file", type=Path, required=True)
    down.set_defaults(run=stop)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
