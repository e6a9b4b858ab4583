"""Pack an openai-whisper checkpoint to int8 for travel, and unpack it to float16.

tiny.en in float16 is 75.6 MB, more than a device call may carry (64 MiB with everything
else). Each float matrix is stored as int8 with one float32 scale per output row (absmax);
vectors and small tensors stay float16. Unpacking gives an ordinary checkpoint that
``whisper.load_model(path)`` reads. The round trip changes weights by at most half a
quantization step (row absmax / 254); bench/RESULTS.md records the WER it gives.

A destination or source ending in ``.xz`` is lzma-compressed (int8 tiny.en: 36.5 MiB plain,
about 26 MiB as .xz).

    python bench/pack_weights.py pack tiny.en.pt tiny.en.int8.pt.xz
    python bench/pack_weights.py unpack tiny.en.int8.pt.xz tiny.en.pt
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

import torch

MIN_PACKED_NUMEL = 4096  # smaller tensors are not worth a scale vector


def pack(checkpoint: dict) -> dict:
    """Return ``checkpoint`` with its large float matrices as (int8, per-row scale) pairs."""
    packed, scales, kept = {}, {}, {}
    for name, tensor in checkpoint["model_state_dict"].items():
        if tensor.is_floating_point() and tensor.ndim >= 2 and tensor.numel() >= MIN_PACKED_NUMEL:
            rows = tensor.float().reshape(tensor.shape[0], -1)
            scale = rows.abs().amax(dim=1).clamp(min=1e-12) / 127
            packed[name] = torch.round(rows / scale[:, None]).to(torch.int8).reshape(tensor.shape)
            scales[name] = scale
        else:
            kept[name] = tensor.half() if tensor.is_floating_point() else tensor
    extra = {k: v for k, v in checkpoint.items() if k not in ("model_state_dict",)}
    return {"int8": packed, "scales": scales, "kept": kept, **extra}


def unpack(packed: dict) -> dict:
    """Return an openai-whisper checkpoint (float16 weights) from a ``pack`` result."""
    state = dict(packed["kept"])
    for name, q in packed["int8"].items():
        scale = packed["scales"][name]
        rows = q.reshape(q.shape[0], -1).float() * scale[:, None]
        state[name] = rows.reshape(q.shape).half()
    extra = {k: v for k, v in packed.items() if k not in ("int8", "scales", "kept")}
    return {**extra, "model_state_dict": state}


def main() -> None:
    """Command line: ``pack SRC DST`` or ``unpack SRC DST``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pack", "unpack"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    args = parser.parse_args()
    opener = lzma.open if args.src.suffix == ".xz" else open
    with opener(args.src, "rb") as f:
        checkpoint = torch.load(f, map_location="cpu", weights_only=False)
    result = pack(checkpoint) if args.action == "pack" else unpack(checkpoint)
    opener = lzma.open if args.dst.suffix == ".xz" else open
    with opener(args.dst, "wb") as f:
        torch.save(result, f)
    print(f"{args.action}: {args.src} -> {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
