"""Speaker attribution: DER and cpWER for call channels and mono diarization, and its cost.

    python bench/diarization.py --model PATH|NAME [--device cpu] [--cache DIR] [--out FILE]

Material: the espeak-ng dialogues of ``tests/fixtures/dialogues.py`` (a two-speaker call with
one overlap, a three-speaker meeting with one overlap), each as a mono mix and as one
channel per speaker (-30 dB crosstalk), with the reference turns.

One ``engine.transcribe_shard`` call (batch 4, word timestamps) decodes the call's channel
file (split by channel: ``call/channels``), the call's mono mix and the meeting's mono mix.
The mono results are then diarized with ``diarize.diarize_result``: ``call/diarize`` and
``meeting/diarize`` (speakers estimated), ``call/diarize-k2`` and ``meeting/diarize-k3``
(number given).

Figures per run: DER with a 250-ms collar on both sides of every reference boundary
(pyannote.metrics ``DiarizationErrorRate(collar=0.5)``: its collar is the total width, so
0.5 is md-eval's ``-c 0.25``), overlap scored; hypothesis turns are the labelled segments,
mapped to the reference speakers by the optimal one-to-one mapping. cpWER: per reference
speaker the words in turn order, per hypothesis speaker likewise, the speaker permutation
with the fewest edits (``components.common.wer``), over all reference words. WER without
speakers over the whole text. Cost: process CPU seconds (and wall seconds) per audio hour
of the added steps, each timed alone: channel detection and gating
(``channels.distinct_channels``), and embeddings, clustering and word assignment
(``diarize_result``). The last line is JSON of every figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyannote.core import Annotation, Segment
from pyannote.metrics.diarization import DiarizationErrorRate

from components.common.audio import load_audio
from components.common.wer import edit_distance, normalize
from components.transcribe import channels
from components.transcribe.diarize import diarize_result
from components.transcribe.engine import TranscribeOptions, load_model, transcribe_shard
from tests.fixtures.dialogues import CALL, MEETING, Dialogue, make_dialogue


def _annotation(turns: list[tuple[float, float, str]]) -> Annotation:
    ann = Annotation()
    for i, (start, end, speaker) in enumerate(turns):
        if end > start:
            ann[Segment(start, end), i] = speaker
    return ann


def der(reference: Dialogue, segments: list[dict]) -> float:
    """DER with a ±250-ms collar (see the module docstring)."""
    metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    ref = _annotation([(s, e, spk) for s, e, spk, _ in reference.turns])
    hyp = _annotation([(s["start"], s["end"], s["speaker"] or "none") for s in segments])
    return float(metric(ref, hyp, uem=Segment(0, reference.duration_s)))


def cpwer(reference: Dialogue, segments: list[dict]) -> float:
    """Concatenated minimum-permutation WER over speakers."""
    ref = {spk: [] for spk in reference.speakers}
    for _, _, spk, text in reference.turns:
        ref[spk] += normalize(text)
    hyp: dict[str, list[str]] = {}
    for s in segments:
        hyp.setdefault(s["speaker"] or "none", []).extend(normalize(s["text"]))
    refs, hyps = list(ref.values()), list(hyp.values())
    width = max(len(refs), len(hyps))
    refs += [[]] * (width - len(refs))
    hyps += [[]] * (width - len(hyps))
    best = min(
        sum(edit_distance(r, hyps[j]) for r, j in zip(refs, perm, strict=True))
        for perm in itertools.permutations(range(width))
    )
    return best / sum(len(r) for r in refs)


def wer(reference: Dialogue, text: str) -> float:
    ref = normalize(" ".join(t[3] for t in reference.turns))
    return edit_distance(ref, normalize(text)) / len(ref)


def _timed(fn, *args, **kwargs):
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.process_time() - cpu, time.perf_counter() - wall


def _score(dialogue: Dialogue, segments: list[dict], text: str) -> dict:
    labelled = any(s.get("speaker") for s in segments)
    return {
        "speakers": len({s["speaker"] for s in segments}) if labelled else 0,
        "der": round(der(dialogue, segments), 4) if labelled else None,
        "cpwer": round(cpwer(dialogue, segments), 4),
        "wer": round(wer(dialogue, text), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "dialogues")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    call, meeting = make_dialogue(CALL, args.cache), make_dialogue(MEETING, args.cache)
    model = load_model(args.model, args.device)
    options = TranscribeOptions(
        model=args.model, language="en", device=args.device, batch_size=4, word_timestamps=True
    )
    paths = [str(call.stereo), str(call.mono), str(meeting.mono)]
    with tempfile.TemporaryDirectory() as work:
        records, cpu, wall = _timed(transcribe_shard, paths, options, work, model=model)
    audio_s = call.duration_s * 3 + meeting.duration_s
    figures: dict[str, dict] = {
        "decode": {
            "audio_s": round(audio_s, 2),
            "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2),
        }
    }
    stereo, call_mono, meeting_mono = ([vars(s) for s in r.segments] for r in records)
    figures["call/channels"] = _score(call, stereo, records[0].text)
    figures["call/mono"] = _score(call, call_mono, records[1].text)
    figures["meeting/mono"] = _score(meeting, meeting_mono, records[2].text)
    _, cpu, wall = _timed(channels.distinct_channels, call.stereo)
    figures["call/channels"]["added_cpu_s_per_audio_hour_detect_gate"] = round(
        cpu * 3600 / call.duration_s
    )
    samples = {"call": load_audio(call.mono), "meeting": load_audio(meeting.mono)}
    diarize_result({"segments": call_mono}, samples["call"])  # warm-up: the encoder's load
    for name, dialogue, segments, k in (
        ("call/diarize", call, call_mono, 0),
        ("call/diarize-k2", call, call_mono, 2),
        ("meeting/diarize", meeting, meeting_mono, 0),
        ("meeting/diarize-k3", meeting, meeting_mono, 3),
    ):
        result, cpu, wall = _timed(
            diarize_result, {"segments": segments}, samples[name.split("/")[0]], k
        )
        figures[name] = _score(dialogue, result["segments"], " ".join(s["text"] for s in segments))
        figures[name]["added_cpu_s_per_audio_hour"] = round(cpu * 3600 / dialogue.duration_s)
        figures[name]["added_wall_s_per_audio_hour"] = round(wall * 3600 / dialogue.duration_s)
    for name, value in figures.items():
        print(name, value, flush=True)
    line = json.dumps(figures, sort_keys=True)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
