"""Build the throughput corpus: test clips repeated and joined into files of 6-75 s.

    python bench/make_corpus.py pack SRC_DIR audio.npz      # here: clips -> one int16 archive
    python bench/make_corpus.py build SRC OUT_DIR --files 64
    python bench/make_corpus.py build SRC OUT_DIR --files 8 --seconds 300   # long-form

``SRC`` is a folder of clips with ``manifest.jsonl`` (``{"file", "text", "duration_s"}``;
decoded with ffmpeg through ``whisper.load_audio``) or an archive made by ``pack`` (needs no
ffmpeg). ``build`` writes 16 kHz mono 16-bit WAV files and ``manifest.jsonl`` with the joined
reference texts. In every 8 files: 5 single utterances (6-17 s), one of 2 utterances, one of
4 utterances (30-50 s, two windows) and one long file (68-73 s, three windows).

``--seconds S`` builds a long-form corpus instead: each file is every clip once, in an order
shuffled per file (seeded by its index), then shuffled again while it is shorter than ``S``;
so a file ends at the first clip boundary at or past ``S`` seconds (meetings, calls).
"""

from __future__ import annotations

import argparse
import json
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
GAP = np.zeros(int(0.6 * SAMPLE_RATE), dtype=np.int16)  # silence between joined clips
LONG_SECONDS = 60.0  # clips at least this long are "long files"
PATTERN = (1, 1, 2, 1, 4, 1, 1, "long")  # utterances per file, by file index modulo 8


def load_clips(src: Path) -> list[tuple[str, str, np.ndarray]]:
    """(name, reference text, int16 samples) of each WAV clip in ``src`` (folder or archive)."""
    if src.suffix == ".npz":
        archive = np.load(src)
        meta = json.loads(bytes(archive["manifest"]).decode())
        return [(m["file"], m["text"], archive[f"clip{i}"]) for i, m in enumerate(meta)]
    import whisper  # ffmpeg decoding, only for a folder of clips

    clips = []
    for line in (src / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["file"].endswith(".wav"):  # the mp3/flac copies would repeat the same speech
            audio = whisper.load_audio(str(src / rec["file"]))
            clips.append((rec["file"], rec["text"], np.round(audio * 32767).astype(np.int16)))
    return clips


def pack(src: Path, dst: Path) -> None:
    """Store the clips of folder ``src`` in one compressed archive."""
    clips = load_clips(src)
    meta = json.dumps([{"file": n, "text": t} for n, t, _ in clips]).encode()
    arrays = {f"clip{i}": a for i, (_, _, a) in enumerate(clips)}
    np.savez_compressed(dst, manifest=np.frombuffer(meta, dtype=np.uint8), **arrays)


def build(src: Path, out_dir: Path, n_files: int) -> list[dict]:
    """Write ``n_files`` corpus files and their manifest to ``out_dir``; return the manifest."""
    clips = load_clips(src)
    short = [c for c in clips if len(c[2]) < LONG_SECONDS * SAMPLE_RATE]
    long = [c for c in clips if len(c[2]) >= LONG_SECONDS * SAMPLE_RATE]
    files, next_short = [], 0
    for i in range(n_files):
        kind = PATTERN[i % len(PATTERN)]
        if kind == "long":
            files.append([long[(i // len(PATTERN)) % len(long)]])
        else:
            files.append([short[(next_short + k) % len(short)] for k in range(kind)])
            next_short += kind
    return write_files(out_dir, files)


def long_parts(
    clips: list[tuple[str, str, np.ndarray]], index: int, seconds: float
) -> list[tuple[str, str, np.ndarray]]:
    """The clips of long-form file ``index``: shuffled passes over ``clips`` up to ``seconds``."""
    rng = np.random.default_rng(index)
    parts: list[tuple[str, str, np.ndarray]] = []
    length = 0.0
    while length < seconds:
        for k in rng.permutation(len(clips)):
            parts.append(clips[k])
            length += (len(clips[k][2]) + len(GAP)) / SAMPLE_RATE
            if length >= seconds:
                break
    return parts


def build_long(src: Path, out_dir: Path, n_files: int, seconds: float) -> list[dict]:
    """Write ``n_files`` long-form files of about ``seconds`` each; return the manifest."""
    clips = load_clips(src)
    return write_files(out_dir, [long_parts(clips, i, seconds) for i in range(n_files)])


def write_files(out_dir: Path, files: list[list[tuple[str, str, np.ndarray]]]) -> list[dict]:
    """Join each file's clips with :data:`GAP`, write them and ``manifest.jsonl``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    for i, parts in enumerate(files):
        samples = np.concatenate([x for _, _, a in parts for x in (a, GAP)][:-1])
        name = f"c{i:03d}.wav"
        with wave.open(str(out_dir / name), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(samples.tobytes())
        text = " ".join(t for _, t, _ in parts)
        manifest.append({"file": name, "text": text, "duration_s": len(samples) / SAMPLE_RATE})
    lines = "".join(json.dumps(m) + "\n" for m in manifest)
    (out_dir / "manifest.jsonl").write_text(lines)
    return manifest


def read_wav(path: Path) -> np.ndarray:
    """A corpus WAV file as float32 in [-1, 1], as ``whisper.load_audio`` returns it."""
    with wave.open(str(path)) as w:
        data = w.readframes(w.getnframes())
    return np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768.0


def main() -> None:
    """Command line: ``pack SRC_DIR DST.npz`` or ``build SRC OUT_DIR --files N``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["pack", "build"])
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--files", type=int, default=64)
    parser.add_argument("--seconds", type=float, help="long-form files of about this length")
    args = parser.parse_args()
    if args.action == "pack":
        pack(args.src, args.dst)
        print(f"packed {args.src} -> {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB)")
    else:
        manifest = (
            build_long(args.src, args.dst, args.files, args.seconds)
            if args.seconds
            else build(args.src, args.dst, args.files)
        )
        total = sum(m["duration_s"] for m in manifest)
        durations = [m["duration_s"] for m in manifest]
        print(
            f"built {len(manifest)} files, {total:.0f} s of audio "
            f"({min(durations):.1f}-{max(durations):.1f} s each) in {args.dst}"
        )


if __name__ == "__main__":
    main()
