"""Redaction over the planted-PII corpus: precision and recall per entity type, and its cost.

Speaks every call of tests/fixtures/pii_corpus.py with espeak-ng, transcribes it with Whisper
(the transcribe engine, so exactly what the pipeline writes), redacts each transcript record
(components/common/redact.py) and counts per entity type:

- a planted value is found (true positive) when it is no longer readable in the redacted
  transcript and a placeholder of its type is there; otherwise it is missed;
- a placeholder of a type beyond the number of planted values of that type in the call is a
  false positive (so every placeholder in a clean call is one).

Only values Whisper wrote down count (one it misheard is not in the transcript to redact).
The cost is the redaction wall time per hour of audio, model loading excluded (printed apart).

    python bench/redact_quality.py --whisper-model ~/.cache/kfp-asr-summarize/tiny.en.pt
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.common import redact
from components.common.records import read_jsonl
from components.transcribe.engine import TranscribeOptions, transcribe_shard
from tests.fixtures.pii_corpus import survivors, synthesize


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whisper-model", required=True)
    parser.add_argument("--repeat", type=int, default=3, help="redaction runs to time")
    parser.add_argument(
        "--audio-dir", type=Path, help="also time the reference texts of a manifest.jsonl folder"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = synthesize(Path(tmp))
        sources = [str(Path(tmp) / name) for name in files]
        options = TranscribeOptions(model=args.whisper_model, language="en", device="cpu")
        records = [r.to_dict() for r in transcribe_shard(sources, options, tmp)]
    started = time.perf_counter()
    redact.redact_text("warm up Maria Lopez 415-867-5309")
    load_s = time.perf_counter() - started

    tp, missed, fp, planted_total = Counter(), Counter(), Counter(), Counter()
    redacted = []
    for record, call in zip(records, files.values(), strict=True):
        out = redact.redact_transcript(record, redact.OUTPUTS)
        redacted.append(out)
        heard = [p for p in call.planted if p in survivors(record["text"], call.planted)]
        left = set(survivors(out["text"], call.planted))
        for entity, placeholder in redact.PLACEHOLDERS.items():
            mine = [p for p in heard if p.entity == entity]
            planted_total[entity] += len([p for p in call.planted if p.entity == entity])
            hits = [p for p in mine if p not in left and placeholder in out["text"]]
            tp[entity] += len(hits)
            missed[entity] += len(mine) - len(hits)
            fp[entity] += max(0, out["text"].count(placeholder) - len(mine))
        name = Path(record["source"]).name
        print(f"{name}\n  heard:    {record['text']}\n  redacted: {out['text']}")

    best, audio_s = _timed(records, args.repeat)
    print("\n| entity | planted | heard by Whisper | found | missed | false positives | "
          "precision | recall |\n|---|---:|---:|---:|---:|---:|---:|---:|")  # fmt: skip
    for entity in redact.PLACEHOLDERS:
        heard_n = tp[entity] + missed[entity]
        precision = tp[entity] / (tp[entity] + fp[entity]) if tp[entity] + fp[entity] else None
        recall = tp[entity] / heard_n if heard_n else None
        print(
            f"| {entity} | {planted_total[entity]} | {heard_n} | {tp[entity]} | "
            f"{missed[entity]} | {fp[entity]} | {_fmt(precision)} | {_fmt(recall)} |"
        )
    print(
        f"\n{len(records)} calls, {audio_s:.1f} s of audio; redaction {best:.3f} s (best of "
        f"{args.repeat}) = {best / audio_s * 3600:.1f} s per hour of audio; engine load "
        f"{load_s:.1f} s once per step"
    )
    if args.audio_dir:
        refs = [
            {"source": r["file"], "status": "ok", "text": r["text"], "segments": [],
             "duration_s": r["duration_s"]}
            for r in read_jsonl(args.audio_dir / "manifest.jsonl")
        ]  # fmt: skip
        best, audio_s = _timed(refs, args.repeat)
        print(
            f"{len(refs)} reference texts of {args.audio_dir}, {audio_s:.1f} s of audio: "
            f"redaction {best:.3f} s = {best / audio_s * 3600:.1f} s per hour of audio"
        )
    return 0


def _timed(records: list[dict], repeat: int) -> tuple[float, float]:
    """Best wall time of redacting ``records`` over ``repeat`` runs, and their audio seconds."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        for record in records:
            redact.redact_transcript(record, redact.OUTPUTS)
        runs.append(time.perf_counter() - started)
    return min(runs), sum(r["duration_s"] or 0 for r in records)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    raise SystemExit(main())
