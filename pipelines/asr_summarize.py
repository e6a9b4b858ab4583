"""``asr-summarize``: plan → ParallelFor(shard index) {transcribe → summarize} → report.

:func:`build_pipeline` makes the pipeline for one deployment profile: the components run on
the profile's image, the transcribe and summarize pods carry its Kueue labels, and each
step gets the profile's resources, scheduling constraints, Secrets and model cache. Every
setting is applied the same way for every profile: profiles differ in data only.

The compiled YAML must run on every KFP backend that docs/compatibility.md lists (2.14 and
later; ``tests/test_compile.py`` parses it with that release's protos): the loop keeps
KFP's own name (a named ``ParallelFor`` breaks ``dsl.Collected`` on 2.15), it iterates over
shard indices whose file lists the tasks read from the plan's ``shards`` artifact, and no
Secret is optional (the manifests always create both).

No ``from __future__ import annotations`` here: KFP reads the pipeline function's types.
"""

import os
from dataclasses import replace
from pathlib import Path

from kfp import compiler, dsl, kubernetes

from components.common.kfp_helpers import lightweight
from components.plan.component import plan
from components.report.component import report
from components.summarize.component import summarize
from components.transcribe.component import transcribe
from pipelines.profiles import ModelCache, Profile, get_profile

PIPELINE_NAME = "asr-summarize"
COMPILED = Path(__file__).resolve().parent.parent / "compiled" / "asr_summarize.yaml"

#: Secret key → environment variable of the S3/MinIO connection (docs/architecture.md).
MINIO_SECRET_KEYS = {
    k: k for k in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_SECURE")
}
LLM_SECRET_KEYS = {"LLM_API_KEY": "LLM_API_KEY"}
MODEL_CACHE_VOLUME = "whisper-cache"


def _configure(task: dsl.PipelineTask, profile: Profile, step: str, display_name: str) -> None:
    """What every step gets: its name in the UI, no caching (each reads or writes a bucket),
    the profile's retries, resources and placement for ``step``, and the MinIO Secret."""
    task.set_display_name(display_name).set_caching_options(False)
    settings = profile.tasks[step]
    task.set_retry(settings.retries, settings.retry_backoff)
    task.set_cpu_request(settings.cpu_request).set_cpu_limit(settings.cpu_limit)
    task.set_memory_request(settings.memory_request).set_memory_limit(settings.memory_limit)
    if settings.accelerator:
        task.set_accelerator_type(settings.accelerator.type)
        task.set_accelerator_limit(settings.accelerator.count)
    for key, value in settings.node_selector.items():
        kubernetes.add_node_selector(task, key, value)
    for toleration in settings.tolerations:
        kubernetes.add_toleration(
            task, toleration.key, toleration.operator, toleration.value, toleration.effect
        )
    kubernetes.use_secret_as_env(task, profile.secrets.minio, MINIO_SECRET_KEYS)


def _mount_cache(task: dsl.PipelineTask, cache: ModelCache) -> None:
    if cache.pvc:
        kubernetes.mount_pvc(task, cache.pvc, cache.path)
    else:
        kubernetes.empty_dir_mount(
            task, MODEL_CACHE_VOLUME, cache.path, size_limit=cache.size_limit
        )
    task.set_env_variable("WHISPER_CACHE_DIR", cache.path)


def _queue(task: dsl.PipelineTask, profile: Profile) -> None:
    for key, value in profile.pod_labels.items():
        kubernetes.add_pod_label(task, key, value)


def build_pipeline(profile: Profile):
    """The ``asr-summarize`` pipeline compiled for ``profile`` (parameter defaults included)."""
    plan_op = lightweight(plan, profile.image)
    transcribe_op = lightweight(transcribe, profile.image)
    summarize_op = lightweight(summarize, profile.image)
    report_op = lightweight(report, profile.image)
    d = profile.params

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=(
            "Transcribe a bucket of recorded audio with Whisper and summarize every transcript "
            f"(deployment profile {profile.name})."
        ),
    )
    def asr_summarize(
        input_uri: str = d.input_uri,
        output_uri: str = d.output_uri,
        whisper_model: str = d.whisper_model,
        language: str = d.language,
        beam_size: int = d.beam_size,
        batch_size: int = d.batch_size,
        word_timestamps: bool = d.word_timestamps,
        channel_speakers: str = d.channel_speakers,
        diarize: bool = d.diarize,
        num_speakers: int = d.num_speakers,
        long_form: str = d.long_form,
        num_shards: int = d.num_shards,
        llm_endpoint: str = d.llm_endpoint,
        llm_model: str = d.llm_model,
        max_tokens: int = d.max_tokens,
        structured_max_tokens: int = d.structured_max_tokens,
        max_concurrency: int = d.max_concurrency,
        reprocess: bool = d.reprocess,
        initial_prompt: str = d.initial_prompt,
        structured_summary: bool = d.structured_summary,
        redact: str = d.redact,
        raw_output_uri: str = d.raw_output_uri,
    ):
        """Transcribe a bucket of recorded audio with Whisper and summarize every transcript.

        Args:
            input_uri: Audio to process: s3://bucket/prefix/ (or a local folder for run-local).
            output_uri: Where transcripts, summaries, subtitles and the report are written.
            whisper_model: Whisper model name (tiny.en … large-v3) or a checkpoint path.
            language: Spoken language code, or auto to detect it per file.
            beam_size: Beam width of Whisper's decoder (1: greedy).
            batch_size: Audio files (with long_form chunked: chunks) Whisper decodes
                together; 0 picks it from the GPU slice's free memory, 1 is the sequential
                path.
            word_timestamps: Add word timings (words: word, start, end, probability) to
                every transcript segment.
            channel_speakers: Names of a call's channel speakers in channel order, e.g.
                agent,customer (files whose channels carry different speakers are always
                transcribed per channel; unnamed channels are channel_0, channel_1).
            diarize: Label the speakers of mono recordings (speaker_0, speaker_1, ...) with
                a speaker-embedding model; costs time.
            num_speakers: Speakers per diarized recording; 0 estimates them.
            long_form: How files longer than 30 s are decoded: sequential (each 30-s window
                after the previous one, as whisper does) or chunked (speech found by Silero
                VAD, cut at pauses into chunks of at most 30 s that are decoded in parallel).
            num_shards: Shards the plan splits the files into, balanced by audio duration.
            llm_endpoint: OpenAI-compatible base URL of the summarizer (the llm-d gateway).
            llm_model: Served model name of the summarizer.
            max_tokens: Longest summary, in tokens.
            structured_max_tokens: Token budget of a structured (JSON) summary request; at
                least the longest object the schema allows (a check says so).
            max_concurrency: Summary requests in flight at once per shard.
            reprocess: Process every input again with this run's settings: the ledger and
                the stored per-input transcripts and summaries are not reused (by default a
                run processes only new and changed inputs).
            initial_prompt: Domain vocabulary for Whisper (terms or a sample sentence), so
                it spells product and person names as given; empty: none.
            structured_summary: Also ask the LLM for a JSON summary (key points, action
                items, decisions, topics, sentiment, language); false: text only.
            redact: Personal data (cards, phones, e-mails, IBANs, US SSNs, person names):
                none; outputs (placeholders in everything written under output_uri); or
                before_llm (also in what the LLM sees).
            raw_output_uri: Prefix where unredacted transcripts are kept too (not under
                output_uri); empty: nowhere.
        """
        planned = plan_op(
            input_uri=input_uri,
            output_uri=output_uri,
            num_shards=num_shards,
            reprocess=reprocess,
            whisper_model=whisper_model,
            language=language,
        )
        _configure(planned, profile, "plan", "plan shards")

        with dsl.ParallelFor(planned.outputs["Output"], parallelism=profile.parallelism) as shard:
            transcribed = transcribe_op(
                shards=planned.outputs["shards"],
                shard_index=shard,
                output_uri=output_uri,
                whisper_model=whisper_model,
                language=language,
                beam_size=beam_size,
                batch_size=batch_size,
                reprocess=reprocess,
                initial_prompt=initial_prompt,
                redact=redact,
                raw_output_uri=raw_output_uri,
                word_timestamps=word_timestamps,
                channel_speakers=channel_speakers,
                diarize=diarize,
                num_speakers=num_speakers,
                long_form=long_form,
            )
            _configure(transcribed, profile, "transcribe", "transcribe shard")
            _queue(transcribed, profile)
            _mount_cache(transcribed, profile.model_cache)

            summarized = summarize_op(
                transcripts=transcribed.outputs["transcripts"],
                shards=planned.outputs["shards"],
                shard_index=shard,
                output_uri=output_uri,
                llm_endpoint=llm_endpoint,
                llm_model=llm_model,
                max_tokens=max_tokens,
                structured_max_tokens=structured_max_tokens,
                max_concurrency=max_concurrency,
                reprocess=reprocess,
                structured_summary=structured_summary,
                redact=redact,
            )
            _configure(summarized, profile, "summarize", "summarize shard")
            _queue(summarized, profile)
            kubernetes.use_secret_as_env(summarized, profile.secrets.llm_api_key, LLM_SECRET_KEYS)

        reported = report_op(
            manifest=planned.outputs["manifest"],
            transcripts=dsl.Collected(transcribed.outputs["transcripts"]),
            summaries=dsl.Collected(summarized.outputs["summaries"]),
            input_uri=input_uri,
            output_uri=output_uri,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            redact=redact,
        )
        _configure(reported, profile, "report", "report")

    return asr_summarize


def compile_pipeline(
    profile_name: str | None, output_path: str | os.PathLike, image: str | None = None
) -> Path:
    """Compile the pipeline for a profile (optionally on another image) to ``output_path``."""
    profile = get_profile(profile_name)
    if image:
        profile = replace(profile, image=image)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(profile), str(output_path))
    return output_path
