"""Planner load: plan thousands of inputs; time, peak RSS and the size of the loop's items.

    python bench/plan_load.py --inputs 5000 20000 100000 [--shards 7] [--write-results]
    python bench/plan_load.py --s3 --inputs 5000 [--shards 7] [--write-results]

Local mode (the default): for each ``--inputs`` N, a temporary folder of N empty ``.wav``
files is planned in a fresh child process (listing, the probe sample, balancing, and writing
the ``shards`` artifact, as the plan component does). The pipeline's loop iterates over
what the plan step returns; its JSON size (``loop_items_bytes``) and its largest item
(``max_item_bytes``) must not grow with N: the file lists travel in the artifact, not in the
loop (docs/compatibility.md, "Argument sizes"). One line per N, the last one last:

    inputs=N shards=K loop_items_bytes=B max_item_bytes=M wall_s=T peak_rss_mib=R

With ``--write-results`` the figures replace the "## Planner loop items" section of
bench/RESULTS.md.

S3 mode (``--s3``): starts a moto S3 server process on 127.0.0.1, puts N tiny ``.wav``
objects (a few bytes: ffprobe cannot read them, so they weigh their size), and runs the
planner twice: over a new output prefix (everything planned), and over an output prefix
whose ledger marks every input as finished (the nightly re-run over an unchanged bucket).
With ``--write-results`` its figures replace the "## Planner load" section.
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
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.common import ledger, storage  # noqa: E402
from components.common.shards import write_shards  # noqa: E402
from components.plan.planner import PlanOptions, plan, to_items  # noqa: E402
from tests.fixtures.s3 import S3Server, free_port, start_moto  # noqa: E402

BUCKET = "plan-load"
INPUT = f"s3://{BUCKET}/incoming/"
#: Empty audio files per subfolder of a local input folder.
PER_FOLDER = 1000


def child(input_uri: str, output_uri: str | None, num_shards: int) -> None:
    """Plan once in this process, write the shards artifact, print the figures as JSON."""
    started = time.perf_counter()
    result = plan(input_uri, PlanOptions(num_shards=num_shards), output_uri)
    with tempfile.TemporaryDirectory(prefix="plan-load-") as tmp:
        shards_file = Path(tmp) / "shards.jsonl"
        loop_items = write_shards(shards_file, result.shards)
        shards_bytes = shards_file.stat().st_size
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "files": len(result.files),
                "planned": sum(len(s) for s in result.shards),
                "shards": len(result.shards),
                "skipped": sum(f.action == ledger.SKIP for f in result.files),
                "loop_items_bytes": len(json.dumps(loop_items)),
                "max_item_bytes": max(len(json.dumps(item)) for item in loop_items),
                "shards_artifact_bytes": shards_bytes,
                "wall_s": round(wall, 2),
                "peak_rss_mib": round(peak_kib / 1024, 1),
            }
        )
    )


def run_child(env: dict[str, str], input_uri: str, output_uri: str, num_shards: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", input_uri, output_uri, "--shards", str(num_shards)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summary_line(figures: dict) -> str:
    """The line the issue asks for (one per planned input count)."""
    return (
        f"inputs={figures['files']} shards={figures['shards']} "
        f"loop_items_bytes={figures['loop_items_bytes']} "
        f"max_item_bytes={figures['max_item_bytes']} wall_s={figures['wall_s']} "
        f"peak_rss_mib={figures['peak_rss_mib']}"
    )


def make_folder(root: Path, count: int) -> Path:
    """``count`` empty ``.wav`` files under ``root/incoming``, in subfolders of 1000."""
    folder = root / "incoming"
    for i in range(count):
        path = folder / f"calls-{i // PER_FOLDER:03d}" / f"call-{i:06d}.wav"
        if i % PER_FOLDER == 0:
            path.parent.mkdir(parents=True)
        path.touch()
    return folder


def run_local(counts: list[int], num_shards: int) -> list[dict]:
    """Plan a fresh local folder per count; the figures per count."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="plan-load-") as tmp:
            folder = make_folder(Path(tmp), count)
            figures = run_child(env, str(folder), "", num_shards)
        results.append(figures)
        print(summary_line(figures), flush=True)
    return results


def local_text(results: list[dict], num_shards: int, load: float) -> str:
    counts = " ".join(str(r["files"]) for r in results)
    rows = "".join(
        f"| {r['files']} | {r['shards']} | {r['loop_items_bytes']} | {r['max_item_bytes']} | "
        f"{r['shards_artifact_bytes']} | {r['wall_s']} | {r['peak_rss_mib']} |\n"
        for r in results
    )
    return (
        "## Planner loop items\n\n"
        f"`python bench/plan_load.py --inputs {counts} --shards {num_shards}` on "
        f"{platform.machine()} ({os.cpu_count()} cores, {platform.python_version()}); a local "
        "folder of empty `.wav` files per size (1000 per subfolder), planned in a fresh child "
        "process: listing, the probe sample (at most "
        f"{PlanOptions().max_probes} ffprobe calls, which fail fast on empty files), balancing, "
        f"and writing the `shards` artifact. Load average {load:.0f} when the run started (the "
        "machine is shared: wall times are upper bounds). Date 2026-12-01.\n\n"
        "| inputs | shards | loop items (bytes) | largest item (bytes) | shards artifact (bytes) "
        "| wall (s) | peak RSS (MiB) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
        f"{rows}\n"
        "The loop iterates over shard indices, so its items stay the same size whatever the "
        "number of inputs: nothing grows in the Workflow object or in a task's "
        "`--executor_input` argument. The file lists are in the `shards` artifact, which each "
        "transcribe and summarize task reads (one line per shard). Before this change each "
        "loop item was the shard's whole file list, about 200 bytes per file inline.\n"
    )


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
    """Replace the section of bench/RESULTS.md that ``text`` heads (or append it)."""
    path = ROOT / "bench" / "RESULTS.md"
    current = path.read_text()
    heading = text.splitlines()[0]
    section = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if section.search(current):
        updated = section.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, nargs="+", default=[5000])
    parser.add_argument("--shards", type=int, default=7)
    parser.add_argument("--s3", action="store_true", help="the S3 listing and ledger mode")
    parser.add_argument("--child", nargs=2, metavar=("INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1] or None, args.shards)
        return
    if not args.s3:
        load = os.getloadavg()[0]
        results = run_local(args.inputs, args.shards)
        if args.write_results:
            write_results(local_text(results, args.shards, load))
        return
    run_s3(args.inputs[0], args.shards, args.write_results)


def run_s3(objects: int, num_shards: int, write: bool) -> None:
    """The S3 mode: list, plan and re-plan ``objects`` objects in a moto server."""
    port = free_port()
    moto = start_moto(port)
    server = S3Server(f"127.0.0.1:{port}", "bench", "bench-secret", secure=False, process=moto)
    env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    try:
        storage.client().make_bucket(BUCKET)
        started = time.perf_counter()
        keys = [f"{INPUT}calls/{i // 500:02d}/call-{i:05d}.wav" for i in range(objects)]
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda k: storage.write_bytes(k, b"RIFF\x00\x00bench" + k[-9:].encode()), keys
                )
            )
        put_s = time.perf_counter() - started
        fresh = run_child(env, INPUT, f"s3://{BUCKET}/out-fresh", num_shards)

        done_out = f"s3://{BUCKET}/out-done"
        items = to_items(storage.list_audio(INPUT), INPUT)
        with ThreadPoolExecutor(16) as pool:
            list(
                pool.map(
                    lambda it: storage.write_text(ledger.ledger_uri(done_out, it), "{}"), items
                )
            )
        rerun = run_child(env, INPUT, done_out, num_shards)
        floor = baseline_rss(env)
    finally:
        moto.terminate()
        moto.wait(timeout=10)

    text = (
        "## Planner load\n\n"
        f"`python bench/plan_load.py --s3 --inputs {objects} --shards {num_shards}` on "
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
    if write:
        write_results(text)
    print(summary_line(fresh))


if __name__ == "__main__":
    main()
