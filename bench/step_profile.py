"""Where a batched or chunked run's time goes on a GPU: kernels against the wall clock.

    python bench/step_profile.py --model /tmp/tiny.en.pt --corpus /tmp/long4 --files 4 \
        --way chunked --batch-size 256 [--fixed-len 80] [--out DIR]

One warm-up run, one plain timed run (the wall clock), then the same run under
``torch.profiler`` (CPU and CUDA activity). It prints the plain wall, the profiled wall, the
sum of the GPU's kernel and copy times (busy), busy over wall (how much of the run the GPU
works: far under 1 means the host is the bottleneck), the count of device-to-host copies and
synchronizations, and the top operators by GPU time and by host time. ``--out`` also gets both
tables, 200 rows each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile
from whisper.audio import N_SAMPLES

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import read_wav
from transcribe_throughput import decode_options, run_chunked

from components.transcribe import batched, vad
from components.transcribe.weights import load_model


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--model", required=True)
    p.add_argument("--corpus", type=Path, required=True, help="from make_corpus.py build")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--way", choices=["batched", "chunked"], default="chunked")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--fixed-len", type=int)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--out", type=Path)
    return p.parse_args()


def main() -> None:
    """Warm up, time, profile, print."""
    args = parse_args()
    manifest = [json.loads(x) for x in (args.corpus / "manifest.jsonl").read_text().splitlines()]
    manifest = manifest[: args.files]
    audios = [read_wav(args.corpus / m["file"]) for m in manifest]
    audio_s = sum(m["duration_s"] for m in manifest)
    model = load_model(args.model, args.device, fp16=args.device == "cuda")
    opts = decode_options(args, model)
    vad_model = vad.load_vad(args.device) if args.way == "chunked" else None
    sync = torch.cuda.synchronize if args.device == "cuda" else lambda: None
    activities = [ProfilerActivity.CPU]
    activities += [ProfilerActivity.CUDA] if args.device == "cuda" else []

    def run(items):
        if args.way == "chunked":
            return run_chunked(model, vad_model, items, args.batch_size, None, opts)
        return [
            r["text"]
            for r in batched.transcribe_batch(model, items, batch_size=args.batch_size, **opts)
        ]

    run([a[: 2 * N_SAMPLES] for a in audios])  # warm-up
    sync()
    start = time.perf_counter()
    run(audios)
    sync()
    wall = time.perf_counter() - start

    with profile(activities=activities) as prof:
        start = time.perf_counter()
        run(audios)
        sync()
        prof_wall = time.perf_counter() - start
    events = prof.key_averages()
    # kernels and copies only, as the table's "Self CUDA time total" counts them (an operator's
    # own row repeats its kernels' time)
    busy = (
        sum(
            e.self_device_time_total
            for e in events
            if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)
        )
        / 1e6
    )
    counts = {
        name: sum(e.count for e in events if e.key == name)
        for name in ("cudaStreamSynchronize", "cudaMemcpyAsync", "cudaGraphLaunch",
                     "cudaLaunchKernel", "aten::item", "aten::_local_scalar_dense")
    }  # fmt: skip
    print(
        f"{args.way} {args.model} batch {args.batch_size}: {audio_s:.0f} s audio, wall "
        f"{wall:.2f} s ({audio_s / wall:.0f}x real time); profiled wall {prof_wall:.2f} s, "
        f"GPU busy {busy:.2f} s = {busy / prof_wall:.0%} of it"
    )
    print("calls:", ", ".join(f"{k} {v}" for k, v in counts.items()))
    for key in ("self_device_time_total", "self_cpu_time_total"):
        print(events.table(sort_by=key, row_limit=args.top, max_name_column_width=60))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        stem = f"profile_{args.way}_{Path(args.model).stem}"
        (args.out / f"{stem}.txt").write_text(
            events.table(sort_by="self_device_time_total", row_limit=200) + "\n"
            + events.table(sort_by="self_cpu_time_total", row_limit=200)
        )  # fmt: skip


if __name__ == "__main__":
    main()
