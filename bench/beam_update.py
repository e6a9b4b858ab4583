"""One beam-search step's bookkeeping: openai-whisper's ``BeamSearchDecoder.update`` against
the batched engine's ``step_rules.BatchBeamSearchDecoder.update``, on the same logits.

    python bench/beam_update.py --device cpu|cuda [--files 256] [--beam 5] [--steps 20]

Each decoder gets the same random logits for ``--steps`` steps over ``--files`` files x
``--beam`` beams, after one untimed step; a step's time is the update alone (the decoder
forward is not run). ``--vocab`` defaults to tiny.en's 51,864 tokens; on a CPU the softmax
and top-k over them outweigh the bookkeeping, so ``--vocab 64`` shows the bookkeeping alone
(on a GPU those two are a few kernels). Prints one line per decoder, then
``ms_stock=<a> ms_batched=<b> speedup=<a/b>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from whisper.decoding import BeamSearchDecoder

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.transcribe.step_rules import BatchBeamSearchDecoder


class _NoCache:
    """Stands in for the key/value cache: the bench times the bookkeeping only."""

    def rearrange_kv_cache(self, source_indices, index=None) -> None:
        pass


def time_decoder(cls, logits: list[torch.Tensor], beam: int, eot: int, device: str) -> float:
    """Mean ms per ``update`` over ``logits[1:]`` (``logits[0]`` is the untimed first step)."""
    decoder = cls(beam, eot, _NoCache(), patience=None)
    rows = logits[0].shape[0]
    tokens = torch.full((rows, 3), eot + 1, device=device)
    sum_logprobs = torch.zeros(rows, device=device)
    tokens, _ = decoder.update(tokens, logits[0].clone(), sum_logprobs)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in logits[1:]:
        tokens, _ = decoder.update(tokens, step.clone(), sum_logprobs)
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / (len(logits) - 1)


def main() -> None:
    """Time both decoders and print the summary line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], required=True)
    p.add_argument("--files", type=int, default=256)
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--vocab", type=int, default=51864, help="tokens (end-of-text: the first)")
    p.add_argument("--threads", type=int, help="torch threads (cpu)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator(device=args.device).manual_seed(0)
    rows = args.files * args.beam
    logits = [
        torch.randn(rows, args.vocab, generator=g, device=args.device) * 4
        for _ in range(args.steps + 1)
    ]
    ms = {}
    for name, cls in (("stock", BeamSearchDecoder), ("batched", BatchBeamSearchDecoder)):
        ms[name] = time_decoder(cls, logits, args.beam, 0, args.device)
        print(f"{name}: {ms[name]:.2f} ms per step ({args.files} files x {args.beam} beams)")
    print(
        f"ms_stock={ms['stock']:.3f} ms_batched={ms['batched']:.3f} "
        f"speedup={ms['stock'] / ms['batched']:.2f}"
    )


if __name__ == "__main__":
    main()
