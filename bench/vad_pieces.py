"""Silero VAD run as batch rows of pieces against one pass over the whole file.

    python bench/vad_pieces.py CLIP.wav [CLIP2.wav ...] [--pieces 30,10] [--leads 0,4]

The clips are joined into one file. For each piece length and lead-in (seconds),
``vad.speech_probabilities`` runs on the CPU with that layout and its per-frame speech
probabilities are compared with ``audio_forward`` over the whole file in one row: the largest
and the mean difference, and the share of frames on the same side of 0.5. Prints one
markdown table row per layout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.common import audio
from components.transcribe import vad


def main() -> None:
    """Compare every layout with one pass; print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("clips", nargs="+", type=Path)
    p.add_argument("--pieces", default="30,10", help="piece lengths in seconds")
    p.add_argument("--leads", default="0,4", help="lead-in lengths in seconds")
    args = p.parse_args()
    samples = np.concatenate([audio.load_audio(c) for c in args.clips])
    model = vad.load_vad("cpu")
    with torch.no_grad(), vad._single_thread(torch.device("cpu")):
        whole = model.audio_forward(torch.from_numpy(samples)[None], vad.SAMPLE_RATE)[0]
    print(f"{samples.size / vad.SAMPLE_RATE:.0f} s of audio, {whole.numel()} frames")
    print("| pieces s | lead-in s | largest difference | mean difference | same side of 0.5 |")
    print("|---:|---:|---:|---:|---:|")
    for piece in (int(x) for x in args.pieces.split(",")):
        for lead in (int(x) for x in args.leads.split(",")):
            vad.PIECE_S["cpu"], vad.LEAD_S = piece, lead
            rows = vad.speech_probabilities(model, [samples])[0]
            diff = (rows - whole).abs()
            same = (rows > 0.5).eq(whole > 0.5).float().mean()
            print(
                f"| {piece} | {lead} | {diff.max():.3f} | {diff.mean():.4f} | {100 * same:.2f} % |"
            )


if __name__ == "__main__":
    main()
