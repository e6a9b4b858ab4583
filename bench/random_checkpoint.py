"""Random-weight Whisper checkpoints with the dimensions of the released sizes.

Only tiny.en's real weights exist on the benchmark machines; these stand in for the larger
sizes to show how decoding cost scales. Their text is noise, so the benchmark fixes the
decoded length (``sample_len``, end-of-text suppressed, no timestamps) to make the
sequential and batched paths decode the same number of tokens.

    python bench/random_checkpoint.py large-v3 /tmp/large-v3.pt
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch
from whisper.model import AudioEncoder, ModelDimensions, TextDecoder, sinusoids


def _dims(n_mels: int, state: int, head: int, layer: int, vocab: int) -> ModelDimensions:
    return ModelDimensions(
        n_mels=n_mels,
        n_audio_ctx=1500,
        n_audio_state=state,
        n_audio_head=head,
        n_audio_layer=layer,
        n_vocab=vocab,
        n_text_ctx=448,
        n_text_state=state,
        n_text_head=head,
        n_text_layer=layer,
    )


# the dims stored in OpenAI's released checkpoints
SIZES: dict[str, ModelDimensions] = {
    "small": _dims(80, 768, 12, 12, 51865),
    "medium": _dims(80, 1024, 16, 24, 51865),
    "large-v3": _dims(128, 1280, 20, 32, 51866),
}


def random_checkpoint(size: str, seed: int = 0) -> dict:
    """An openai-whisper checkpoint (float16) of ``size`` with N(0, 0.02) weights."""
    dims = SIZES[size]
    d = dims
    with torch.device("meta"):  # shapes only; Whisper() itself cannot be built on meta
        encoder = AudioEncoder(
            d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer
        )
        decoder = TextDecoder(
            d.n_vocab, d.n_text_ctx, d.n_text_state, d.n_text_head, d.n_text_layer
        )
    shapes = {f"encoder.{k}": v.shape for k, v in encoder.state_dict().items()}
    shapes |= {f"decoder.{k}": v.shape for k, v in decoder.state_dict().items()}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if name == "encoder.positional_embedding":
            state[name] = sinusoids(dims.n_audio_ctx, dims.n_audio_state).half()
        elif "_ln." in name or name.endswith("ln.weight") or name.endswith("ln.bias"):
            fill = 1.0 if name.endswith("weight") else 0.0
            state[name] = torch.full(shape, fill, dtype=torch.float16)
        else:
            w = torch.randn(shape, generator=generator, device=device, dtype=torch.float16)
            state[name] = (w * 0.02).cpu()
    return {"dims": asdict(dims), "model_state_dict": state}


def main() -> None:
    """Command line: ``SIZE OUT.pt [--seed N]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.save(random_checkpoint(args.size, args.seed), args.out)
    print(f"{args.size}: {args.out} ({args.out.stat().st_size / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
