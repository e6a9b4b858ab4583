"""KFP wrapper of the transcription engine (thin: the work is in ``engine.py``)."""

from kfp.dsl import Dataset, Input, Metrics, Output

from components.common.kfp_helpers import lightweight


def transcribe(
    shards: Input[Dataset],
    transcripts: Output[Dataset],
    metrics: Output[Metrics],
    shard_index: int = 0,
    output_uri: str = "",
    whisper_model: str = "tiny.en",
    language: str = "auto",
    beam_size: int = 5,
    batch_size: int = 1,
    long_form: str = "sequential",
    device: str = "auto",
    condition_on_previous_text: bool = True,
    no_speech_threshold: float = 0.6,
    silence_threshold_db: float = -50.0,
    reprocess: bool = False,
    initial_prompt: str = "",
    redact: str = "outputs",
    raw_output_uri: str = "",
    word_timestamps: bool = False,
    split_channels: bool = True,
    channel_speakers: str = "",
    diarize: bool = False,
    num_speakers: int = 0,
):
    """Transcribe a shard of audio files with OpenAI Whisper, loading the model once.

    Inputs whose transcript is already stored under output_uri at the same ETag are reused;
    new transcripts are stored there one by one, so a retried task redoes only the rest.

    Args:
        shards: The plan's shard lists (JSON Lines, one line {shard, items} per shard); the
            items are {source, name, etag, size}, the source an s3://bucket/key or an
            absolute local path.
        shard_index: Which shard of the plan this task transcribes (the loop's item).
        output_uri: Output prefix where per-input transcripts are stored
            (transcripts/<name>.json); empty: nothing is stored or reused.
        whisper_model: Whisper model name (tiny.en ... large-v3), checkpoint file path,
            or s3:// URI of a checkpoint file.
        language: Spoken language code or name; auto detects it per file.
        beam_size: Beams at temperature 0 (5, as the whisper CLI); sampling fallback above.
        batch_size: Files (in chunked mode: chunks) decoded together; 0 picks it from the
            device's free memory, 1 is the sequential reference path.
        long_form: sequential (a file's 30-s windows one after another, as whisper does) or
            chunked (speech found by Silero VAD, cut at pauses into chunks of at most 30 s
            that are decoded as parallel rows).
        device: cuda, cuda:N or cpu; auto picks CUDA when present (fp16 on GPU only).
        condition_on_previous_text: Prompt each 30-s window with the previous text.
        no_speech_threshold: No-speech probability above which a window with a low log
            probability is silence.
        silence_threshold_db: Level (dBFS, measured above 250 Hz) below which audio is silence
            (no text); mains hum stays below it.
        reprocess: Transcribe every input again with these settings; stored transcripts
            are not reused (each new one is still stored as soon as it is made).
        initial_prompt: Domain vocabulary (a list of terms or a sample sentence) that prompts
            Whisper, so it spells them as given; empty: none.
        redact: Personal data: none, outputs (stored transcripts redacted) or before_llm (the
            transcripts output redacted too, so the summarizer never sees it).
        raw_output_uri: Prefix where the unredacted transcripts are kept as well
            (transcripts/<name>.json); empty: nowhere.
        word_timestamps: Add words [{word, start, end, probability}] to every segment
            (cross-attention alignment as openai-whisper computes it, batched too).
        split_channels: A file whose channels carry different speakers (a stereo call) is
            transcribed per channel and merged by time, each segment labelled with its
            channel's speaker; identical channels are transcribed once.
        channel_speakers: Comma-separated names of the channels' speakers in channel order,
            e.g. agent,customer; unnamed channels are channel_0, channel_1, ...
        diarize: Label the speakers of mono files (speaker_0, speaker_1, ...) with a
            speaker-embedding model and split segments where the speaker changes; costs
            time, so off by default.
        num_speakers: Speakers in each diarized file; 0 estimates the number per file.

    Returns:
        transcripts: JSON Lines, one record per input file in input order (source, status,
            error, language, duration_s, text, segments, model, processing_s,
            step_started_at, step_finished_at); segments carry speaker (null when not
            labelled) and words (null unless asked).
        metrics: files, files_failed, files_reused, audio_seconds, processing_seconds,
            real_time_factor, model_load_seconds, step_started_at_s, step_finished_at_s,
            step_seconds.
    """
    import logging

    from components.common.records import stamp_jsonl, step_metrics, utc_now
    from components.common.redact import check_mode
    from components.common.shards import read_shard
    from components.transcribe.channels import speaker_names
    from components.transcribe.engine import TranscribeOptions, run_transcribe_step
    from components.transcribe.speakers import SpeakerOptions

    started_at = utc_now()

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = TranscribeOptions(
        model=whisper_model,
        language=language,
        beam_size=beam_size,
        batch_size=batch_size,
        long_form=long_form,
        device=device,
        condition_on_previous_text=condition_on_previous_text,
        no_speech_threshold=no_speech_threshold,
        silence_threshold_db=silence_threshold_db,
        initial_prompt=initial_prompt or None,
        word_timestamps=word_timestamps,
        speakers=SpeakerOptions(
            split_channels=split_channels,
            channel_speakers=tuple(speaker_names(channel_speakers)) if channel_speakers else (),
            diarize=diarize,
            num_speakers=num_speakers,
        ),
    )
    items = read_shard(shards.path, shard_index)
    values = run_transcribe_step(
        items,
        transcripts.path,
        options,
        output_uri or None,
        reprocess,
        check_mode(redact),
        raw_output_uri or None,
    )
    finished_at = utc_now()
    stamp_jsonl(transcripts.path, started_at, finished_at)
    values |= step_metrics(started_at, finished_at)
    for name, value in values.items():
        metrics.log_metric(name, value)


transcribe_op = lightweight(transcribe)
