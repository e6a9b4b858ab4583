"""Transcription throughput: the paper's CLI per file vs a transcribe() loop vs batched
vs chunked.

    python bench/transcribe_throughput.py --device cpu|cuda --model NAME|PATH --files N \
        [--corpus DIR] [--long-seconds S] [--ways cli,loop,batched,chunked,chunked-prompt]

Ways, on the same device and model: ``cli`` runs one ``whisper FILE --model ...`` process
per file (process start, imports and model load included, as the paper's jobs did, less the
model download); ``loop`` loads the model once and calls ``model.transcribe()`` per file;
``batched`` calls ``components.transcribe.batched.transcribe_batch``; ``chunked`` finds the
speech with Silero VAD and decodes its <= 30-s chunks as independent rows of the batched
decoder (``components.transcribe.chunking``; VAD time included), ``chunked-prompt`` the same
with each chunk prompted by its file's previous chunk. All use beam 5 with best_of 5 and
temperature fallback, as the CLI does. ``loop``, ``batched`` and ``chunked`` get the same
waveforms, decoded before their clocks start; ``cli`` decodes its own (ffmpeg).

``--long-seconds S`` builds a long-form corpus instead (``make_corpus.py build --seconds``):
``--files`` files of about S seconds each, the test clips shuffled and joined.
``--free-gib 5,10`` also runs ``batched`` and ``chunked`` as on a GPU slice of that many GiB:
the process capped to it, at the batch that ``auto_batch_size`` picks for what the weights
leave free there.

``--weights fp32`` keeps float32 weights on the GPU as ``whisper.load_model()`` does; the
default is the transcribe step's float16 weights (``weights.half_weights``), for every way.

``--fixed-len N`` is for random-weight checkpoints: N tokens per window, end-of-text
suppressed, no timestamps, no fallback, so both paths decode the same number of tokens.

The last line printed is exactly ``ratio_vs_cli=<x> ratio_vs_loop=<y> wer_loop=<a>
wer_batched=<b> ratio_chunked_vs_loop=<c> wer_chunked=<d>`` (nan for a way not run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import whisper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_corpus import build, build_long, read_wav

from components.common.wer import corpus_wer
from components.transcribe import batched, chunking, step_rules, vad
from components.transcribe.weights import load_model


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], required=True)
    p.add_argument("--model", required=True, help="model name or checkpoint path")
    p.add_argument("--files", type=int, default=64, help="corpus files to use")
    p.add_argument("--corpus", type=Path, help="corpus from make_corpus.py build (else built)")
    p.add_argument("--source", type=Path, help="clips for a new corpus ($ASR_TEST_AUDIO_DIR)")
    p.add_argument("--long-seconds", type=float, help="long-form corpus: files of ~S s")
    p.add_argument("--ways", default="cli,loop,batched")
    p.add_argument(
        "--max-wer-gap",
        type=float,
        help="exit 1 when batched or chunked WER exceeds the loop's by more (e.g. 0.005)",
    )
    p.add_argument("--free-gib", default="", help="also run at auto_batch_size for these GiB")
    p.add_argument(
        "--batch-limits",
        default="",
        help="--free-gib runs also with these batch limits in place of the device default "
        "(e.g. 256; the memory rule still caps them)",
    )
    p.add_argument("--cli-files", type=int, help="run the cli way on every k-th file only")
    p.add_argument("--batch-size", type=int, help="batched way (default: per device table)")
    p.add_argument(
        "--batch-sizes", default="", help="batched and chunked also at these, e.g. 8,16,32,64"
    )
    p.add_argument(
        "--step-modes",
        default="",
        help="decoder step modes for the batched way, first one headline (default: per "
        "device; e.g. graph,eager)",
    )
    p.add_argument("--beam-size", type=int, default=5)
    p.add_argument("--fixed-len", type=int, help="decode exactly N tokens per window")
    p.add_argument(
        "--weights",
        choices=["fp16", "fp32"],
        default="fp16",
        help="weights kept in float16 on a GPU, as the transcribe step loads them (default), "
        "or in float32, as whisper.load_model() does",
    )
    p.add_argument("--threads", type=int, help="torch threads (cpu)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="time VAD/encoder/decoder/bookkeeping and count decoder steps and rounds "
        "(synchronizes at every stage, so the walls are longer)",
    )
    p.add_argument("--json", type=Path, help="write all figures here")
    p.add_argument("--markdown", type=Path, help="append a results table here")
    return p.parse_args()


def decode_options(args: argparse.Namespace, model: whisper.Whisper) -> dict:
    """The transcribe()/transcribe_batch() keyword arguments of this run."""
    opts = {
        "language": "en",
        "beam_size": args.beam_size,
        "best_of": args.beam_size,
        "fp16": args.device == "cuda",
    }
    if args.fixed_len:
        tokenizer = whisper.tokenizer.get_tokenizer(
            model.is_multilingual, num_languages=model.num_languages
        )
        # end-of-text and every timestamp suppressed: random weights otherwise emit timestamp
        # pairs, which move the seek by part of a window and change the number of windows
        timestamps = range(tokenizer.timestamp_begin, model.dims.n_vocab)
        suppress = [-1, tokenizer.eot, *timestamps]
        opts |= {
            "sample_len": args.fixed_len,
            "suppress_tokens": ",".join(map(str, suppress)),
            "without_timestamps": True,
            "temperature": 0.0,
            "compression_ratio_threshold": None,
            "logprob_threshold": None,
            "no_speech_threshold": None,
        }
    return opts


def sync(device: str) -> None:
    """Wait for queued GPU work, so that wall-clock timings are complete."""
    if device == "cuda":
        torch.cuda.synchronize()


#: 30-s windows the batched decoder decoded since the last :func:`timed_way` began (each
#: round's windows at the first temperature, reported by ``transcribe_batch``'s ``on_round``).
WINDOWS = [0]


def count_windows(windows: int, seconds: float) -> None:
    """``on_round`` of the timed ``transcribe_batch`` calls: adds to :data:`WINDOWS`."""
    WINDOWS[0] += windows


def timed_way(device: str, run) -> tuple[float, list[str], float | None]:
    """Run ``run()`` -> texts; return (wall seconds, texts, peak GPU GiB).

    :data:`WINDOWS` is reset first, so afterwards it holds the run's windows.
    """
    WINDOWS[0] = 0
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    start = time.perf_counter()
    texts = run()
    sync(device)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return wall, texts, peak


def run_cli(args: argparse.Namespace, paths: list[Path], out_dir: Path) -> list[str]:
    """The paper's way: one ``whisper`` process per file; returns the texts it wrote."""
    texts = []
    for path in paths:
        cmd = [sys.executable, "-m", "whisper", str(path), "--model", args.model]
        cmd += ["--device", args.device, "--language", "en", "--beam_size", str(args.beam_size)]
        cmd += ["--best_of", str(args.beam_size), "--output_dir", str(out_dir)]
        cmd += ["--output_format", "txt", "--verbose", "False"]
        cmd += ["--fp16", str(args.device == "cuda")]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        texts.append((out_dir / f"{path.stem}.txt").read_text())
    return texts


#: Ways besides cli, loop and batched (see the module docstring); batched-bs1, batched-fp32
#: and loop-fp32 are diagnostics: the batched engine one file at a time, and both in fp32.
EXTRA_WAYS = ("chunked", "chunked-prompt", "batched-bs1", "batched-fp32", "loop-fp32")


def file_wers(refs: list[str], texts: list[str]) -> list[float]:
    """Each file's WER, for telling one bad file from a general loss."""
    return [round(corpus_wer([(r, t)]), 4) for r, t in zip(refs, texts, strict=True)]


def default_bs(args: argparse.Namespace, way: str = "batched") -> int:
    """The batch of a way: ``--batch-size`` or the device default (the chunked one for the
    chunked ways, as the transcribe step's ``batch_size: 0`` picks it before its memory cap)."""
    return args.batch_size or batched.default_batch_size(args.device, way.startswith("chunked"))


def install_profiler(device: str) -> tuple[dict[str, float], dict[str, int]]:
    """Wrap the batched engine's stages with timers; returns the running totals (s) and the
    number of calls of each stage (decoder forward: one per token step of a round)."""
    totals: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def wrap(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*a, **k):
            sync(device)
            start = time.perf_counter()
            out = original(*a, **k)
            sync(device)
            totals[label] += time.perf_counter() - start
            calls[label] += 1
            return out

        setattr(owner, name, timed)

    wrap(whisper.model.AudioEncoder, "forward", "encoder")
    wrap(batched._PaddedInference, "logits", "decoder forward")
    wrap(step_rules.BatchBeamSearchDecoder, "update", "beam search bookkeeping")
    wrap(whisper.decoding.GreedyDecoder, "update", "sampling bookkeeping")
    wrap(step_rules.BatchTimestampRules, "apply", "timestamp rules")
    wrap(batched, "_advance", "segment bookkeeping")
    wrap(batched._BatchDecodingTask, "run_rows", "decode rounds (with fallback re-runs)")
    wrap(vad, "speech_probabilities", "vad")
    return totals, calls


def run_chunked(
    model: whisper.Whisper,
    vad_model,
    audios: list,
    bs: int,
    mode: str,
    opts: dict,
    prompt_previous: bool = False,
    vad_options: vad.VadOptions | None = None,
) -> list[str]:
    """The ``chunked`` way: VAD, chunk plan, chunks as batch rows; returns the texts."""
    regions = vad.speech_regions(vad_model, audios, vad_options)

    def decode(chunks, prompts, on_done):
        return batched.transcribe_batch(
            model,
            chunks,
            batch_size=bs,
            step_mode=mode,
            initial_prompts=prompts,
            on_done=on_done,
            on_round=count_windows,
            **opts,
        )

    results = chunking.transcribe_chunked(
        audios, regions, decode, language="en", prompt_previous=prompt_previous
    )
    return [r["text"] for r in results]


def main() -> None:
    """Run the ways, print a table and the summary line."""
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ways = args.ways.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None or not (corpus / "manifest.jsonl").exists():
            source = args.source or Path(os.environ.get("ASR_TEST_AUDIO_DIR", ""))
            if not (source / "manifest.jsonl").is_file():
                why = f"{source}/manifest.jsonl is missing" if str(source) != "." else "none given"
                sys.exit(
                    f"no clips to build the corpus from ({why}): pass"
                    " --source DIR or set ASR_TEST_AUDIO_DIR=DIR, a folder of clips with"
                    " manifest.jsonl (`bash tools/make_test_corpus.sh DIR` makes one), or"
                    " --corpus DIR, a corpus built earlier"
                )
            corpus = corpus or Path(tmp) / "corpus"
            if args.long_seconds:
                build_long(source, corpus, args.files, args.long_seconds)
            else:
                build(source, corpus, args.files)
        manifest = [json.loads(x) for x in (corpus / "manifest.jsonl").read_text().splitlines()]
        manifest = manifest[: args.files]
        paths = [corpus / m["file"] for m in manifest]
        refs = [m["text"] for m in manifest]
        audio_s = sum(m["duration_s"] for m in manifest)

        if args.device == "cuda":
            total = torch.cuda.get_device_properties(0).total_memory / 2**30
            name = f"{torch.cuda.get_device_name()} ({total:.0f} GiB)"
        else:
            name = f"CPU, {torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}"
        print(f"device: {name}; model: {args.model}; {len(paths)} files, {audio_s:.0f} s audio")
        print(f"weights: {args.weights if args.device == 'cuda' else 'fp32'}")

        start = time.perf_counter()
        fp16 = args.weights == "fp16" and args.device == "cuda"
        model = load_model(args.model, args.device, fp16=fp16)
        load_s = time.perf_counter() - start
        opts = decode_options(args, model)
        audios = [read_wav(p) for p in paths]
        rows: dict[str, dict] = {}
        totals, calls = install_profiler(args.device) if args.profile else (None, None)

        if "cli" in ways:
            step = max(1, len(paths) // args.cli_files) if args.cli_files else 1
            sub = list(range(0, len(paths), step))[: args.cli_files or len(paths)]
            wall, texts, _ = timed_way(
                "cpu", lambda: run_cli(args, [paths[i] for i in sub], Path(tmp))
            )
            sub_s = sum(manifest[i]["duration_s"] for i in sub)
            wer = corpus_wer(zip([refs[i] for i in sub], texts, strict=True))
            rows["cli"] = {"files": len(sub), "audio_s": sub_s, "wall_s": wall, "wer": wer}
            print(f"cli: {rows['cli']}", flush=True)
        if "loop" in ways:
            model.transcribe(audios[0][: whisper.audio.N_SAMPLES], **opts)  # warm-up, untimed
            wall, texts, peak = timed_way(
                args.device, lambda: [model.transcribe(a, **opts)["text"] for a in audios]
            )
            wer = corpus_wer(zip(refs, texts, strict=True))
            rows["loop"] = {"files": len(paths), "audio_s": audio_s, "wall_s": wall}
            rows["loop"] |= {"wer": wer, "peak_gib": peak, "file_wer": file_wers(refs, texts)}
            print(f"loop: {rows['loop']}", flush=True)
        if "batched" in ways:
            default = default_bs(args)
            sizes = [default] + [int(b) for b in args.batch_sizes.split(",") if b]
            modes = [m for m in args.step_modes.split(",") if m]
            modes = modes or [batched.default_step_mode(args.device)]
            runs = [(default, modes[0])] + [(default, m) for m in modes[1:]]
            runs += [(bs, modes[0]) for bs in sizes[1:]]
            headline: list[str] = []
            for bs, mode in dict.fromkeys(runs):
                # warm-up at this batch shape, untimed (kernel selection, allocator growth)
                batched.transcribe_batch(
                    model, [a[: whisper.audio.N_SAMPLES] for a in audios[:bs]], batch_size=bs,
                    step_mode=mode, **opts,
                )  # fmt: skip
                if totals is not None:
                    totals.clear()
                    calls.clear()
                wall, texts, peak = timed_way(
                    args.device,
                    lambda bs=bs, mode=mode: [
                        r["text"]
                        for r in batched.transcribe_batch(
                            model,
                            audios,
                            batch_size=bs,
                            step_mode=mode,
                            on_round=count_windows,
                            **opts,
                        )
                    ],
                )
                key = "batched"
                if bs != default:
                    key += f" bs={bs}"
                if mode != modes[0]:
                    key += f" {mode}"
                rows[key] = {"files": len(paths), "audio_s": audio_s, "wall_s": wall}
                rows[key] |= {"wer": corpus_wer(zip(refs, texts, strict=True)), "peak_gib": peak}
                rows[key] |= {
                    "windows": WINDOWS[0],
                    "batch_size": bs,
                    "step_mode": mode,
                    "file_wer": file_wers(refs, texts),
                }
                headline = headline or texts
                rows[key]["texts_unlike_headline"] = sum(
                    a != b for a, b in zip(headline, texts, strict=True)
                )
                print(f"{key}: wall {wall:.1f} s, {rows[key]}", flush=True)
                if totals is not None:
                    rows[key] |= {"profile_s": dict(totals), "profile_calls": dict(calls)}
                if args.json:  # after every run, so that a cut-off call keeps what finished
                    args.json.write_text(json.dumps({"device": name, "rows": rows}))

        extra = [w for w in ways if w in EXTRA_WAYS]
        if any(w.startswith("chunked") for w in extra) or args.free_gib:
            vad_model = vad.load_vad(args.device)
            vad.speech_regions(vad_model, [a[: whisper.audio.N_SAMPLES] for a in audios[:2]])
        free = [float(g) for g in args.free_gib.split(",") if g]
        limits = [None] + [int(b) for b in args.batch_limits.split(",") if b]
        beams = max(opts.get("beam_size") or 1, opts.get("best_of") or 1)
        # a slice of g GiB: what auto_batch_size sees there is g less the weights
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        sizes_for = {
            g: dict.fromkeys(
                batched.batch_size_for(model.dims, beams, g * 2**30 - weights, limit=n)
                for n in limits
            )
            for g in free
        }
        runs = [(way, 1 if way == "batched-bs1" else default_bs(args, way), None) for way in extra]
        swept = [int(b) for b in args.batch_sizes.split(",") if b]
        swept = [bs for bs in swept if bs != default_bs(args, "chunked")]
        runs += [("chunked", bs, None) for bs in swept if "chunked" in extra]
        for g in free:
            # batched has one row per file: past len(paths), a larger batch runs the same
            batched_sizes = [b for b in sizes_for[g] if b <= len(paths)]
            batched_sizes += [b for b in sizes_for[g] if b > len(paths)][:1]
            for bs in sizes_for[g]:
                runs += [("batched", bs, g)] if bs in batched_sizes else []
                runs += [("chunked", bs, g)]
        mode = (args.step_modes.split(",")[0] if args.step_modes else "") or None
        for way, bs, gib in runs:
            way_opts = opts | {"fp16": False} if way.endswith("fp32") else opts
            if way == "loop-fp32":
                run = lambda a, o=way_opts: [model.transcribe(x, **o)["text"] for x in a]  # noqa: E731
            elif way.startswith("batched"):
                run = lambda a, bs=bs, o=way_opts: [  # noqa: E731
                    r["text"]
                    for r in batched.transcribe_batch(
                        model, a, batch_size=bs, step_mode=mode, on_round=count_windows, **o
                    )
                ]
            else:
                run = lambda a, bs=bs, way=way: run_chunked(  # noqa: E731
                    model, vad_model, a, bs, mode, opts, way == "chunked-prompt"
                )
            if gib is not None and args.device == "cuda":
                torch.cuda.empty_cache()  # the last run's cached blocks would count to the cap
                total = torch.cuda.get_device_properties(0).total_memory
                torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total))
            key = way if gib is None else f"{way} ({gib:g} GiB free: batch {bs})"
            if gib is None and bs != default_bs(args, way) and way == "chunked":
                key += f" bs={bs}"
            try:
                run([a[: 2 * whisper.audio.N_SAMPLES] for a in audios[: max(bs, 2)]])  # warm-up
                if totals is not None:
                    totals.clear()
                    calls.clear()
                wall, texts, peak = timed_way(args.device, lambda run=run: run(audios))
            except torch.OutOfMemoryError as e:
                print(f"{key}: out of memory ({str(e).splitlines()[0]})", flush=True)
                torch.cuda.empty_cache()
                continue
            rows[key] = {"files": len(paths), "audio_s": audio_s, "wall_s": wall, "batch_size": bs}
            rows[key] |= {"wer": corpus_wer(zip(refs, texts, strict=True)), "peak_gib": peak}
            rows[key] |= {"windows": WINDOWS[0] or None}
            rows[key] |= {"step_mode": mode or batched.default_step_mode(args.device)}
            rows[key]["file_wer"] = file_wers(refs, texts)
            if totals is not None:
                rows[key] |= {"profile_s": dict(totals), "profile_calls": dict(calls)}
            print(f"{key}: {rows[key]}", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"device": name, "rows": rows}))
        if args.device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)

    for row in rows.values():
        row["x_realtime"] = row["audio_s"] / row["wall_s"]
    rate = {k: r["x_realtime"] for k, r in rows.items()}
    nan = float("nan")
    summary = {
        "ratio_vs_cli": rate.get("batched", nan) / rate.get("cli", nan),
        "ratio_vs_loop": rate.get("batched", nan) / rate.get("loop", nan),
        "wer_loop": rows.get("loop", {}).get("wer", nan),
        "wer_batched": rows.get("batched", {}).get("wer", nan),
        "ratio_chunked_vs_loop": rate.get("chunked", nan) / rate.get("loop", nan),
        "wer_chunked": rows.get("chunked", {}).get("wer", nan),
    }
    table = [
        f"\n#### {name}: model `{args.model}`, {len(paths)} files, {audio_s:.0f} s of audio, "
        f"beam {args.beam_size}" + (f", fixed length {args.fixed_len}" if args.fixed_len else ""),
        f"\nModel load (once, loop/batched): {load_s:.1f} s; weights "
        f"{args.weights if args.device == 'cuda' else 'fp32'}.\n",
        "| way | files | audio s | wall s | x real time | WER % | peak GPU GiB | batch | steps "
        "| windows | ms per window |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for way, r in rows.items():
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "n/a"
        windows = r.get("windows")
        per = f"{1000 * r['wall_s'] / windows:.1f}" if windows else ""
        table.append(
            f"| {way} | {r['files']} | {r['audio_s']:.0f} | {r['wall_s']:.1f} | "
            f"{r['x_realtime']:.1f} | {100 * r['wer']:.2f} | {peak} | {r.get('batch_size', '')} "
            f"| {r.get('step_mode', '')} | {windows or ''} | {per} |"
        )
    for way, r in rows.items():
        if "profile_s" in r:
            parts = ", ".join(
                f"{k} {v:.2f} s ({r['profile_calls'][k]} calls)"
                for k, v in sorted(r["profile_s"].items())
            )
            table.append(f"\nProfile of `{way}` (wall {r['wall_s']:.1f} s): {parts}.")
    text = "\n".join(table) + "\n"
    print(text)
    if args.markdown:
        with args.markdown.open("a") as f:
            f.write(text)
    if args.json:
        args.json.write_text(json.dumps({"device": name, "model": args.model, "rows": rows}))
    print(" ".join(f"{k}={v:.4f}" if not math.isnan(v) else f"{k}=nan" for k, v in summary.items()))
    if args.max_wer_gap is not None and "loop" in rows:
        gaps = {
            w: rows[w]["wer"] - rows["loop"]["wer"] for w in ("batched", "chunked") if w in rows
        }
        worse = {w: g for w, g in gaps.items() if g > args.max_wer_gap}
        print(f"wer_gap_check={'FAIL' if worse else 'PASS'} gaps={gaps}")
        sys.exit(1 if worse else 0)


if __name__ == "__main__":
    main()
