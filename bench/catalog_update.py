"""Catalogue update cost: a catalogue of N inputs on an S3 server gains 10 new inputs.

    python bench/catalog_update.py [--existing 1000 20000] [--new 10] [--write-results]

Starts a moto S3 server process on 127.0.0.1 and, for each N of ``--existing``, builds a
catalogue of N inputs (synthetic records the size of a 5-minute call: ~4.6 KB of text in 60
segments, a 600-character summary; not timed), then runs the report step's catalogue update
(:func:`components.report.catalogue.update_catalogue`) for N + ``--new`` inputs of which
``--new`` are new, in a fresh child process. The child reads the plan manifest from a JSON
Lines file as the report step does and reports wall and CPU time, S3 requests by method (counted at
the SDK's HTTP pool) and the time spent waiting for them, bytes sent and received, and peak
RSS (``VmHWM``). With
``--write-results`` the figures replace the "## Catalogue update" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.common import storage  # noqa: E402
from components.common.records import Segment, SummaryRecord, TranscriptRecord  # noqa: E402
from components.report.catalogue import CatalogueOptions, update_catalogue  # noqa: E402
from tests.fixtures.s3 import S3Server, free_port, start_moto  # noqa: E402

BUCKET = "catalog-bench"
WORDS = [
    "the",
    "quarterly",
    "numbers",
    "were",
    "discussed",
    "and",
    "the",
    "team",
    "agreed",
    "on",
    "next",
    "steps",
]


def peak_rss_mib() -> float:
    """This process's peak resident memory (``VmHWM``: unlike ``ru_maxrss`` it starts afresh
    at ``exec``, so a child does not inherit the parent's peak)."""
    status = Path("/proc/self/status").read_text()
    return round(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024, 1)


def item(i: int) -> dict:
    name = f"calls/{i // 1000:03d}/call-{i:06d}.wav"
    return {"source": f"s3://{BUCKET}/incoming/{name}", "name": name, "etag": f"etag-{i}"}


def records(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """Transcript and summary records the size of a 5-minute call."""
    transcripts, summaries = [], []
    for it in items:
        segments = [
            Segment(
                5.0 * k, 5.0 * k + 4.8, " ".join(WORDS[(k + j) % len(WORDS)] for j in range(12))
            )
            for k in range(60)
        ]
        transcripts.append(
            TranscriptRecord(
                it["source"],
                language="en",
                duration_s=300.0,
                text=" ".join(s.text for s in segments),
                segments=segments,
                model="tiny.en",
                processing_s=3.1,
                step_started_at="2026-12-01T02:00:00.000000Z",
                step_finished_at="2026-12-01T02:05:00.000000Z",
            ).to_dict()
        )
        summaries.append(
            SummaryRecord(
                it["source"], summary="A summary. " * 55, model="m", ttft_s=0.2, latency_s=2.0
            ).to_dict()
        )
    return transcripts, summaries


def child(output_uri: str, manifest_path: str, first_new: int, new: int) -> None:
    """One catalogue update in this process; prints the figures as JSON."""
    counts: collections.Counter[str] = collections.Counter()
    sent = received = 0
    waited = 0.0
    http = storage.client()._http
    real = http.urlopen

    def counting(method, url, body=None, **kw):
        nonlocal sent, received, waited
        counts[method] += 1
        sent += len(body) if isinstance(body, (bytes, bytearray)) else 0
        before = time.perf_counter()
        response = real(method, url, body=body, **kw)
        waited += time.perf_counter() - before
        if method != "HEAD":  # a HEAD answer names the object's length but carries no body
            received += int(response.headers.get("content-length") or 0)
        return response

    http.urlopen = counting
    t, s = records([item(i) for i in range(first_new, first_new + new)])
    started, cpu = time.perf_counter(), time.process_time()
    with open(manifest_path, encoding="utf-8") as f:
        manifest = [json.loads(line) for line in f]
    update = update_catalogue(output_uri, manifest, t, s, "bench", CatalogueOptions())
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        json.dumps(
            {
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "s3_wait_s": round(waited, 2),
                "requests": dict(counts),
                "requests_total": sum(counts.values()),
                "sent_mib": round(sent / 2**20, 2),
                "received_mib": round(received / 2**20, 2),
                "peak_rss_mib": peak_rss_mib(),
                "records": update["transcripts"].records,
                "parts": update["transcripts"].parts,
                "summary_parts": update["summaries"].parts,
                "parts_written": update["transcripts"].parts_written,
            }
        )
    )


def run_child(env: dict[str, str], *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def baseline_rss(env: dict[str, str]) -> float:
    """Peak RSS of a child that imports the catalogue module and does nothing (the floor)."""
    code = "import components.report.catalogue, bench.catalog_update as b; print(b.peak_rss_mib())"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(out.stdout)


def write_results(text: str) -> None:
    path = ROOT / "bench" / "RESULTS.md"
    current = path.read_text()
    section = re.compile(r"^## Catalogue update\n.*?(?=^## |\Z)", re.S | re.M)
    if section.search(current):
        updated = section.sub(lambda _: text, current)
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    path.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--new", type=int, default=10)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.child:
        out, manifest, first, new = args.child
        child(out, manifest, int(first), int(new))
        return

    port = free_port()
    moto = start_moto(port)
    server = S3Server(f"127.0.0.1:{port}", "bench", "bench-secret", secure=False, process=moto)
    env = {**os.environ, **server.env, "PYTHONPATH": str(ROOT)}
    os.environ.update(env)
    rows = []
    try:
        storage.client().make_bucket(BUCKET)
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.existing:
                out = f"s3://{BUCKET}/out-{n}"
                existing = [item(i) for i in range(n)]
                started = time.perf_counter()
                t, s = records(existing)
                update_catalogue(out, existing, t, s, "setup", CatalogueOptions())
                del t, s
                build_s = time.perf_counter() - started
                manifest = Path(tmp) / f"manifest-{n}.jsonl"
                with open(manifest, "w", encoding="utf-8") as f:
                    for it in (item(i) for i in range(n + args.new)):
                        f.write(json.dumps({**it, "size": 1, "action": "skip"}) + "\n")
                result = run_child(env, out, str(manifest), str(n), str(args.new))
                rows.append((n, build_s, result))
                print(n, round(build_s, 1), result, flush=True)
        floor = baseline_rss(env)
    finally:
        moto.terminate()
        moto.wait(timeout=10)

    table = "".join(
        f"| {n} + {args.new} | {r['records']} | {r['parts']} / {r['summary_parts']} | "
        f"{r['parts_written']} | {r['wall_s']} | {r['cpu_s']} | {r['s3_wait_s']} | "
        f"{r['requests_total']} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(r['requests'].items()))}) | "
        f"{r['sent_mib']} / {r['received_mib']} | {r['peak_rss_mib']} |\n"
        for n, _, r in rows
    )
    text = (
        "## Catalogue update\n\n"
        f"`python bench/catalog_update.py --existing {' '.join(map(str, args.existing))} "
        f"--new {args.new}` on {platform.machine()} ({os.cpu_count()} cores, shared with other "
        f"work; Python {platform.python_version()}), moto S3 server process on 127.0.0.1, "
        "measured 2026-12-01. Records the size of a 5-minute call (transcript ~11 KB of JSON "
        "with 60 segments, summary ~0.7 KB); default part size "
        f"{CatalogueOptions().part_bytes // 2**20} MiB. The update runs in a fresh child "
        "process and includes reading the plan manifest of every input; requests are counted "
        "at the S3 SDK's HTTP pool.\n\n"
        "| existing + new inputs | records after | parts (transcripts / summaries) | "
        "parts written | wall (s) | CPU (s) | waiting for S3 (s) | S3 requests | "
        "MiB sent / received | peak RSS (MiB) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n"
        f"{table}"
        f"| import only (floor) | | | | | | | | | {floor} |\n\n"
        "The update reads the index (a few bytes per input), lists the parts, rewrites the tail "
        "part with the new records and composes `transcripts.jsonl`/`summaries.jsonl` on the "
        "server from the parts (one `UploadPartCopy` per part; no byte of the sealed parts "
        "passes through the report step). Its requests grow with the number of parts (one "
        "per 8 MiB of JSON Lines), not with the inputs; its bytes with the index (source, part, "
        "status, duration per input) and the tail. Setting up the catalogues (not timed): "
        + ", ".join(f"{n} inputs in {b:.0f} s" for n, b, _ in rows)
        + ".\n"
    )
    print(text)
    if args.write_results:
        write_results(text)


if __name__ == "__main__":
    main()
