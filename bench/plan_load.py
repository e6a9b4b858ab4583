"""Planner load: list and shard thousands of small objects in an S3 server; time and peak RSS.

    python bench/plan_load.py [--objects 5000] [--shards 7] [--write-results]

Starts a moto S3 server process on 127.0.0.1, puts ``--objects`` tiny ``.wav`` objects (a
few bytes: ffprobe cannot read them, so they weigh their size), and runs the planner in a
fresh child process twice: over a new output prefix (everything planned), and over an output
prefix whose ledger marks every input as finished (the nightly re-run over an unchanged
bucket). The child reports its wall time and peak RSS (``resource.getrusage``); with
``--write-results`` the figures replace the "## Planner load" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.common import ledger, storage  # noqa: E402
from components.plan.planner import PlanOptions, plan, to_items  # noqa: E402
from tests.fixtures.s3 import free_port, start_moto  # noqa: E402

BUCKET = "plan-load"
INPUT = f"s3://{BUCKET}/incoming/"


def child(output_uri: str, num_shards: int) -> None:
    """Plan once in this process and print the figures as JSON."""
    started = time.perf_counter()
    result = plan(INPUT, PlanOptions(num_shards=num_shards), output_uri)
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "files": len(result.files),
                "planned": sum(len(s) for s in result.shards),
                "shards": len(result.shards),
                "skipped": sum(f.action == ledger.SKIP for f in result.files),
                "wall_s": round(wall, 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )


def run_child(env: dict[str, str], output_uri: str, num_shards: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", output_uri, "--shards", str(num_shards)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_rss(env: dict[str, str]) -> float:
    """Peak RSS of a child that imports the planner and plans nothing (the floor)."""
    code = (
        "import resource, components.plan.planner; "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return round(int(out.stdout) / 1024, 1)


def write_results(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    current = path.read_text()
    section = re.compile(r"^## Planner load\n.*?(?=^## |\Z)", re.S | re.M)
    if section.search(current):
        updated = section.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--shards", type=int, default=7)
    parser.add_argument("--child", metavar="OUTPUT_URI", help=argparse.SUPPRESS)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.shards)
        return

    port = free_port()
    moto = start_moto(port)
    env = {
        **os.environ,
        "MINIO_ENDPOINT": f"127.0.0.1:{port}",
        "MINIO_ACCESS_KEY": "bench",
        "MINIO_SECRET_KEY": "bench-secret",
        "MINIO_REGION": "us-east-1",
        "PYTHONPATH": str(ROOT),
    }
    os.environ.update(env)
    try:
        storage.client().make_bucket(BUCKET)
        started = time.perf_counter()
        keys = [f"{INPUT}calls/{i // 500:02d}/call-{i:05d}.wav" for i in range(args.objects)]
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda k: storage.write_bytes(k, b"RIFF\x00\x00bench" + k[-9:].encode()), keys
                )
            )
        put_s = time.perf_counter() - started
        fresh = run_child(env, f"s3://{BUCKET}/out-fresh", args.shards)

        done_out = f"s3://{BUCKET}/out-done"
        items = to_items(storage.list_audio(INPUT), INPUT)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda it: storage.write_text(ledger.ledger_uri(done_out, it), "{}"), items
                )
            )
        rerun = run_child(env, done_out, args.shards)
        floor = baseline_rss(env)
    finally:
        moto.terminate()
        moto.wait(timeout=10)

    text = (
        "## Planner load\n\n"
        f"`python bench/plan_load.py --objects {args.objects} --shards {args.shards}` on "
        f"{platform.machine()} ({os.cpu_count()} cores, {platform.python_version()}), moto S3 "
        "server process on 127.0.0.1; planner in a fresh child process; objects of ~20 bytes "
        f"(put in {put_s:.0f} s). At most `PlanOptions.max_probes` = "
        f"{PlanOptions().max_probes} files are probed with ffprobe (8 at a time, "
        f"{PlanOptions().probe_timeout_s:.0f} s timeout); the rest weigh their size.\n\n"
        "| case | inputs | planned | skipped | shards | wall (s) | peak RSS (MiB) |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| new output prefix (all planned) | {fresh['files']} | {fresh['planned']} | "
        f"{fresh['skipped']} | {fresh['shards']} | {fresh['wall_s']} | "
        f"{fresh['peak_rss_mib']} |\n"
        f"| ledger marks all finished (re-run) | {rerun['files']} | {rerun['planned']} | "
        f"{rerun['skipped']} | {rerun['shards']} | {rerun['wall_s']} | "
        f"{rerun['peak_rss_mib']} |\n"
        f"| import only (floor) | | | | | | {floor} |\n\n"
        "Wall time covers listing, the ledger listing, probing and balancing. Peak RSS stays at "
        "the interpreter-and-imports floor: the listing holds only keys, sizes and ETags, never "
        "object data.\n"
    )
    print(text)
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
