"""Chunked long-form decoding: WER and speed of VAD settings, against batched, same call.

    python bench/chunk_settings.py --device cuda --model tiny.en.pt \
        --corpus /tmp/long8 --corpus /tmp/long4 --pads 200,400,600,1000 --thresholds 0.5,0.35

Each corpus (``make_corpus.py build --seconds``) is decoded once by the batched engine (the
reference: within a few tenths of a point of the ``transcribe()`` loop, bench/RESULTS.md) and
then by the ``chunked`` way once per pair of Silero settings (``speech_pad_ms`` x
``threshold``, the others at :class:`components.transcribe.vad.VadOptions`' defaults), VAD
time included. It prints one line per run and a Markdown table: chunks, mean chunk length,
WER and x real time per setting, which is how ``VadOptions``' defaults are chosen.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import read_wav
from transcribe_throughput import decode_options, run_chunked, timed_way

from components.common.wer import corpus_wer
from components.transcribe import batched, chunking, vad
from components.transcribe.weights import load_model


def main() -> None:
    """Run the settings over each corpus and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], required=True)
    p.add_argument("--model", required=True, help="model name or checkpoint path")
    p.add_argument("--corpus", type=Path, action="append", required=True)
    p.add_argument("--pads", default="200,400,600")
    p.add_argument("--thresholds", default="0.5")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--batch-sizes", default="", help="then the best setting at these batches")
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    args.fixed_len = None
    model = load_model(args.model, args.device, fp16=args.device == "cuda")
    opts = decode_options(args, model)
    bs = args.batch_size or batched.default_batch_size(args.device)
    vad_model = vad.load_vad(args.device)
    settings = [
        replace(vad.VadOptions(), speech_pad_ms=int(pad), threshold=float(th))
        for th in args.thresholds.split(",")
        for pad in args.pads.split(",")
    ]
    rows = []
    for corpus in args.corpus:
        manifest = [json.loads(x) for x in (corpus / "manifest.jsonl").read_text().splitlines()]
        audios = [read_wav(corpus / m["file"]) for m in manifest]
        refs = [m["text"] for m in manifest]
        audio_s = sum(m["duration_s"] for m in manifest)
        warm = [a[: 2 * 480000] for a in audios[:2]]
        run_chunked(model, vad_model, warm, bs, None, opts)  # warm-up, untimed

        def batched_texts(audios=audios) -> list[str]:
            results = batched.transcribe_batch(model, audios, batch_size=bs, **opts)
            return [r["text"] for r in results]

        runs = [("batched", None, bs)] + [("chunked", s, bs) for s in settings]
        runs += [("chunked", None, int(b)) for b in args.batch_sizes.split(",") if b]
        first = len(rows)
        for way, setting, size in runs:
            if way == "chunked" and setting is None:  # the best setting so far, another batch
                best = min(rows[first + 1 :], key=lambda r: r["wer"])
                setting = replace(
                    vad.VadOptions(), speech_pad_ms=best["pad_ms"], threshold=best["threshold"]
                )
                run_chunked(model, vad_model, warm * (size // 2), size, None, opts, False, setting)
            if setting is None:
                wall, texts, peak = timed_way(args.device, batched_texts)
                chunks = None
            else:
                wall, texts, peak = timed_way(
                    args.device,
                    lambda s=setting, a=audios, b=size: run_chunked(
                        model, vad_model, a, b, None, opts, vad_options=s
                    ),
                )
                regions = vad.speech_regions(vad_model, audios, setting)
                chunks = [c for r in regions for c in chunking.plan_chunks(r)]
            row = {
                "corpus": f"{len(audios)} x {audio_s / len(audios):.0f} s",
                "way": way,
                "pad_ms": setting.speech_pad_ms if setting else None,
                "threshold": setting.threshold if setting else None,
                "batch": size,
                "chunks": len(chunks) if chunks is not None else None,
                "mean_chunk_s": sum(e - s for s, e in chunks) / len(chunks) if chunks else None,
                "speech_share": sum(e - s for s, e in chunks) / audio_s if chunks else None,
                "wer": corpus_wer(zip(refs, texts, strict=True)),
                "x_realtime": audio_s / wall,
                "peak_gib": peak,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows))
            if args.device == "cuda":
                torch.cuda.empty_cache()
    head = "corpus | way | pad ms | threshold | batch | chunks | mean chunk s | speech share"
    print(f"\n| {head} | WER % | x real time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        fmt = {k: ("" if v is None else v) for k, v in r.items()}
        mean = f"{r['mean_chunk_s']:.1f}" if r["mean_chunk_s"] else ""
        share = f"{100 * r['speech_share']:.0f} %" if r["speech_share"] else ""
        print(
            f"| {fmt['corpus']} | {r['way']} | {fmt['pad_ms']} | {fmt['threshold']} | "
            f"{r['batch']} | {fmt['chunks']} | {mean} | {share} | {100 * r['wer']:.2f} | "
            f"{r['x_realtime']:.1f} |"
        )


if __name__ == "__main__":
    main()
