"""Long recordings: Silero VAD, chunk planning, chunked decoding, per-file records, progress."""

from __future__ import annotations

import importlib.resources
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from components.common import audio
from components.common.records import OK
from components.common.subtitles import to_srt
from components.common.wer import corpus_wer
from components.transcribe import chunking, engine, vad
from components.transcribe.batched import transcribe_batch
from components.transcribe.engine import TranscribeOptions

SR = audio.SAMPLE_RATE
LONG = "long01_meeting_en-us_s165.wav"
SHORT = "utt01_en-us_s175.wav"
SECOND = "utt02_en-gb_s160.wav"
OPTIONS = {"language": "en", "beam_size": 5, "best_of": 5, "fp16": False}


@pytest.fixture(scope="module")
def model(whisper_model: str) -> torch.nn.Module:
    return engine.load_model(whisper_model, device="cpu")


@pytest.fixture(scope="module")
def vad_model() -> torch.jit.ScriptModule:
    return vad.load_vad("cpu")


@pytest.fixture(scope="module")
def clip(audio_dir: Path):
    """A clip's samples by file name."""
    return lambda name: audio.load_audio(audio_dir / name)


@pytest.fixture(scope="module")
def gapped(clip) -> tuple[np.ndarray, float]:
    """utt01, 40 s of silence, utt02: one file with a long pause; and where utt02 starts."""
    first, second = clip(SHORT), clip(SECOND)
    silence = np.zeros(40 * SR, dtype=np.float32)
    return np.concatenate([first, silence, second]), (first.size + silence.size) / SR


# --- chunk planning (pure) ---------------------------------------------------------------


def test_regions_within_thirty_seconds_are_one_chunk() -> None:
    assert chunking.plan_chunks([(1.0, 5.0), (6.0, 20.0), (21.0, 30.5)]) == [(1.0, 30.5)]
    assert chunking.plan_chunks([]) == []


def test_longer_runs_are_cut_at_the_longest_pause() -> None:
    regions = [(0.0, 10.0), (10.5, 20.0), (23.0, 35.0), (35.2, 50.0), (50.4, 52.0)]
    # the 3-s pause at 20-23 s is the longest: both sides then fit in 30 s
    assert chunking.plan_chunks(regions) == [(0.0, 20.0), (23.0, 52.0)]


def test_every_chunk_fits_and_chunks_keep_their_order() -> None:
    rng = np.random.default_rng(0)
    edges = np.cumsum(rng.uniform(0.2, 6.0, size=400))
    regions = list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))
    spans = chunking.plan_chunks(regions)
    assert all(end - start <= chunking.MAX_CHUNK_S + 1e-9 for start, end in spans)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
    assert spans[0][0] == regions[0][0] and spans[-1][1] == regions[-1][1]
    # every region lies inside exactly one chunk
    for start, end in regions:
        assert sum(s <= start and end <= e for s, e in spans) == 1


def test_neighbours_that_fit_together_are_joined_after_the_cuts() -> None:
    regions = [(0.0, 2.0), (7.0, 15.0), (16.0, 20.0), (22.0, 40.0)]
    # cut at 2-7 s, then at 20-22 s; then (0, 2) and (7, 20) fit in one chunk
    assert chunking.plan_chunks(regions) == [(0.0, 20.0), (22.0, 40.0)]


def test_a_single_region_longer_than_a_window_is_cut_evenly() -> None:
    assert chunking.plan_chunks([(10.0, 70.0)]) == [(10.0, 40.0), (40.0, 70.0)]


def test_chunk_segments_move_to_the_file_clock_and_stay_in_order() -> None:
    chunks = [chunking.Chunk(0, 2.0, 10.0), chunking.Chunk(0, 40.0, 52.0)]
    seg = {"seek": 0, "tokens": [], "temperature": 0.0}
    results = [
        {
            "text": " a b",
            "segments": [seg | {"start": 0.0, "end": 3.0, "text": " a"}],
            "language": "en",
        },
        {
            "text": " c",
            "segments": [seg | {"start": 1.0, "end": 13.0, "text": " c"}],  # past the chunk
            "language": "en",
        },
    ]
    merged = chunking.merge_results(chunks, results, "en")
    assert [(s["id"], s["start"], s["end"]) for s in merged["segments"]] == [
        (0, 2.0, 5.0),
        (1, 41.0, 52.0),
    ]
    assert merged["text"] == " a b c"
    assert chunking.merge_results([], [], "de") == {"text": "", "segments": [], "language": "de"}


# --- Silero VAD (real model, from the installed wheel) -----------------------------------


def test_vad_model_ships_in_the_wheel(vad_model) -> None:
    data = importlib.resources.files("silero_vad.data")
    assert (data / "silero_vad.jit").is_file(), "the weights come with the package"
    assert isinstance(vad_model, torch.jit.ScriptModule)


def test_vad_keeps_the_threads_of_torch() -> None:
    threads = torch.get_num_threads()
    model = vad.load_vad("cpu")
    assert torch.get_num_threads() == threads
    vad.speech_regions(model, [np.zeros(SR, dtype=np.float32)])
    assert torch.get_num_threads() == threads


def test_vad_finds_speech_and_not_silence(vad_model, gapped) -> None:
    samples, second_start = gapped
    regions = vad.speech_regions(vad_model, [samples, np.zeros(20 * SR, dtype=np.float32)])
    speech, silence = regions
    assert silence == []
    assert speech and speech[0][0] < 1.0
    first_end = max(e for s, e in speech if s < second_start - 20)
    assert first_end < second_start - 39, "the 40-s pause is not speech"
    assert any(abs(s - second_start) < 0.5 for s, _ in speech)
    assert speech[-1][1] <= samples.size / SR


def test_chunks_begin_a_quarter_second_before_their_first_word(vad_model, clip, audio_manifest):
    """Whisper mishears a chunk's first word when the chunk starts right at its onset (with
    0.3 s of lead the words come back, bench/RESULTS.md "Long recordings"): every chunk that
    begins at a clip starts at least 0.25 s before the clip's first sound. Silero's old
    defaults here (pad 200 ms, threshold 0.5) left 0.12-0.20 s."""
    names = sorted(n for n in audio_manifest if n.endswith(".wav"))[:8]
    gap = np.zeros(SR, dtype=np.float32)
    parts, onsets, at = [], [], gap.size  # a second of silence before the first clip too
    for name in names:
        samples = clip(name)
        loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
        onsets.append((at + loud[0]) / SR)
        parts += [samples, gap]
        at += samples.size + gap.size
    (regions,) = vad.speech_regions(vad_model, [np.concatenate([gap, *parts])])
    chunks = chunking.plan_chunks(regions)
    leads = [min(o - s for o in onsets if o > s - 0.1) for s, _ in chunks if s < onsets[-1]]
    at_clips = [lead for lead in leads if lead < 1.0]  # chunks that begin at a clip
    assert len(at_clips) >= 3, leads
    assert min(at_clips) >= 0.25, leads


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_vad_rows_give_a_long_file_the_probabilities_of_one_pass(
    vad_model, clip, monkeypatch, device
) -> None:
    """A file cut into rows (the CPU's 30-s pieces, the GPU's 10-s ones, run here on the
    CPU) gets the probabilities of one pass over it: each row's lead-in settles the state.
    Without a lead-in, 30-s pieces differ from one pass by up to 0.87 at a join."""
    monkeypatch.setitem(vad.PIECE_S, "cpu", vad.PIECE_S[device])
    long = np.concatenate([clip(LONG), clip("long02_news_en-gb+m3_s160.wav")])  # 141 s
    rows = vad.speech_probabilities(vad_model, [long])[0]
    with vad._single_thread(torch.device("cpu")):
        whole = vad_model.audio_forward(torch.from_numpy(long)[None], SR)[0]
    assert rows.shape == whole.shape
    assert (rows - whole).abs().max() < 0.5
    assert (rows > 0.5).eq(whole > 0.5).float().mean() > 0.997


# --- chunked decoding with real tiny.en ----------------------------------------------------


@pytest.mark.slow
def test_chunked_mode_maps_times_back_and_skips_the_pause(
    tmp_path, audio_dir, audio_manifest, model, whisper_model, gapped
) -> None:
    samples, second_start = gapped
    from tests.test_transcribe_engine import write_wav

    path = write_wav(tmp_path / "gapped.wav", samples)
    options = TranscribeOptions(
        model=whisper_model, device="cpu", batch_size=4, long_form="chunked"
    )
    (record,) = engine.transcribe_shard([str(path)], options, tmp_path / "work", model=model)
    assert record.status == OK
    reference = f"{audio_manifest[SHORT]['text']} {audio_manifest[SECOND]['text']}"
    assert corpus_wer([(reference, record.text)]) <= 0.1
    starts = [s.start for s in record.segments]
    assert starts == sorted(starts)
    assert not any(10.0 < s.start < second_start - 1 for s in record.segments), (
        "no text in the pause"
    )
    assert any(abs(s.start - second_start) < 2.0 for s in record.segments)
    assert record.segments[-1].end <= record.duration_s
    assert to_srt(record.segments).startswith("1\n00:00:0")


def test_long_form_must_be_a_known_mode() -> None:
    with pytest.raises(engine.ConfigError, match="long_form must be one of sequential, chunked"):
        engine.resolve_options(TranscribeOptions(long_form="parallel"))


def test_chunks_are_prompted_with_initial_prompt_and_previous_text(model, gapped) -> None:
    samples, second_start = gapped
    regions = [[(0.0, 9.0), (second_start, samples.size / SR)]]  # 40 s apart: two chunks
    seen: list[list[str | None]] = []

    def decode(chunks, prompts, on_done):
        seen.append(list(prompts))
        return transcribe_batch(
            model, chunks, batch_size=4, initial_prompts=prompts, on_done=on_done, **OPTIONS
        )

    prompt = "Council budget."
    chunking.transcribe_chunked([samples], regions, decode, language="en", initial_prompt=prompt)
    assert seen == [[prompt, prompt]], "one round; every chunk gets the initial prompt"
    seen.clear()
    (result,) = chunking.transcribe_chunked(
        [samples], regions, decode, language="en", initial_prompt=prompt, prompt_previous=True
    )
    assert len(seen) == 2 and seen[0] == [prompt]
    first_text = "".join(s["text"] for s in result["segments"] if s["start"] < second_start)
    assert seen[1] == [chunking.join_prompt(prompt, first_text)]


# --- a batched shard stores each file when it is done, and tells how far it is -----------


@pytest.fixture(scope="module")
def shard_run(audio_dir, model, whisper_model, tmp_path_factory, caplog_module):
    """The long clip first, a short one second, decoded together (batch 2)."""
    options = TranscribeOptions(
        model=whisper_model, device="cpu", batch_size=2, progress_interval_s=0.0
    )
    stored: list[tuple[str, int]] = []  # (file, log lines so far) at each store
    sources = [str(audio_dir / LONG), str(audio_dir / SHORT)]
    records = engine.transcribe_shard(
        sources,
        options,
        tmp_path_factory.mktemp("work"),
        model=model,
        on_record=lambda r: stored.append((Path(r.source).name, len(caplog_module.records))),
    )
    return records, stored


@pytest.fixture(scope="module")
def caplog_module():
    """Log records of the whole module's shard run (caplog is per test)."""
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.INFO)
    root = logging.getLogger("components.transcribe")
    level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    handler.records = records  # type: ignore[attr-defined]
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.slow
def test_batched_shard_stores_each_file_as_soon_as_it_is_done(shard_run) -> None:
    records, stored = shard_run
    assert [Path(r.source).name for r in records] == [LONG, SHORT], "returned in input order"
    assert [r.status for r in records] == [OK, OK]
    # the 9-s clip finishes after one window, the 73-s one after three: stored first
    assert [name for name, _ in stored] == [SHORT, LONG]


@pytest.mark.slow
def test_progress_is_logged_inside_a_long_file(shard_run, caplog_module) -> None:
    _, stored = shard_run
    lines = [r.getMessage() for r in caplog_module.records]
    progress = [m for m in lines if "windows decoded" in m]
    assert progress, lines
    assert "of 82 s audio" in progress[0] and "x real time" in progress[0]
    # some progress lines come after the short file is stored and before the long one is
    short_at, long_at = (at for _, at in stored)
    between = [m for m in lines[short_at:long_at] if "windows decoded" in m]
    assert between, "the long file reports progress while it is still being decoded"


def test_progress_lines_are_spaced_by_the_interval(caplog) -> None:
    from components.transcribe.progress import DecodeProgress

    now = [0.0]
    caplog.set_level("INFO", logger="components.transcribe.progress")
    progress = DecodeProgress("meeting.wav", 600.0, interval_s=30.0, clock=lambda: now[0])
    for t in range(1, 91):  # a round per second for 90 s, 10 s of audio each
        now[0] = float(t)
        progress.update(2, 10.0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0] == (
        "meeting.wav: 60 windows decoded, 300 of 600 s audio (50 %), 10.0x real time"
    )


def test_sequential_path_counts_windows(caplog, model, clip, whisper_model) -> None:
    from components.transcribe.decode import decode_many
    from components.transcribe.progress import DecodeProgress

    caplog.set_level("INFO", logger="components.transcribe.progress")
    options = engine.resolve_options(
        TranscribeOptions(model=whisper_model, device="cpu", beam_size=None, best_of=None)
    )
    progress = DecodeProgress("long01", 73.0, interval_s=0.0)
    (result,) = decode_many(model, [clip(LONG)[: 45 * SR]], options, progress=progress)
    assert result["segments"]
    assert progress.windows >= 2
    assert "windows decoded in" in caplog.text
    assert "decode" not in vars(model), "model.decode is restored"
