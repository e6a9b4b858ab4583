"""``kfp-asr`` (also ``python -m pipelines``): compile, run locally, submit, schedule, profiles.

Exit codes: 0 success; 1 ``compile --check`` found ``compiled/`` stale, a local step
crashed, or the S3 endpoint stayed unreachable past its retries (the message names
``MINIO_ENDPOINT``); 2 a usage or configuration error (the message names the setting); 3
``run-local`` finished but some records failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from components.common.errors import ConfigError, StorageError
from pipelines.profiles import get_profile, load_profiles

DEFAULT_PACKAGE = Path("compiled/asr_summarize.yaml")
EXIT_STALE = EXIT_STEP_CRASHED = 1
EXIT_CONFIG = 2
EXIT_FAILED_RECORDS = 3


def _compile(args: argparse.Namespace) -> int:
    from pipelines.asr_summarize import compile_pipeline

    if not args.check:
        compile_pipeline(args.profile, args.output, args.image)
        print(f"wrote {args.output}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = compile_pipeline(args.profile, Path(tmp) / "fresh.yaml", args.image).read_bytes()
    if args.output.is_file() and args.output.read_bytes() == fresh:
        print(f"{args.output} is current")
        return 0
    print(f"{args.output} is stale: run `kfp-asr compile` and commit it", file=sys.stderr)
    return EXIT_STALE


def _run_local(args: argparse.Namespace) -> int:
    from components.report.report import all_ok
    from pipelines.local import LOCAL_PROFILE, run_local

    profile = get_profile(LOCAL_PROFILE).with_retries(args.retries, args.retry_backoff)
    overrides = {
        name: getattr(args, name)
        for name in (
            "whisper_model",
            "language",
            "beam_size",
            "batch_size",
            "long_form",
            "num_shards",
            "llm_endpoint",
            "llm_model",
            "max_tokens",
            "structured_max_tokens",
            "max_concurrency",
            "initial_prompt",
            "structured_summary",
            "redact",
            "raw_output_uri",
            "channel_speakers",
            "num_speakers",
        )
        if getattr(args, name) is not None
    }
    params = replace(
        profile.params,
        input_uri=args.input,
        output_uri=args.output,
        reprocess=args.reprocess,
        word_timestamps=args.word_timestamps or profile.params.word_timestamps,
        diarize=args.diarize or profile.params.diarize,
        **overrides,
    )
    try:
        metrics = run_local(profile, params, verbose=args.verbose)
    except RuntimeError as e:  # kfp.local: a step crashed; its log is above
        print(f"kfp-asr: run-local failed: {e}", file=sys.stderr)
        cause = storage_problem(params.output_uri)
        if cause:
            print(f"kfp-asr: error: {cause}", file=sys.stderr)
        return EXIT_STEP_CRASHED
    if args.verbose:
        print(", ".join(f"{k}={v}" for k, v in sorted(metrics.items())))
    print(run_summary(params.output_uri, metrics))
    return 0 if all_ok(metrics) else EXIT_FAILED_RECORDS


def run_summary(output_uri: str, metrics: dict[str, float | int]) -> str:
    """What ``run-local`` prints at the end: the files table, the headline, the report."""
    from components.common import storage
    from pipelines.progress import results_table

    def records(name: str) -> list[dict]:
        text = storage.read_text(storage.join(output_uri, name))
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    table = results_table(records("transcripts.jsonl"), records("summaries.jsonl"))
    rtf = metrics.get("real_time_factor")
    headline = (
        f"{metrics['files_ok']} of {metrics['files_processed']} files ok, "
        f"{metrics['files_failed']} failed, {metrics['files_skipped']} skipped (finished "
        f"earlier); {metrics.get('audio_seconds', 0):.1f} s audio"
        + (f" at {rtf:.1f}x real time" if rtf else "")
    )
    report = storage.join(output_uri, "report.html")
    return f"\n{table}\n\n{headline}\nreport: {report}"


def storage_problem(uri: str) -> str | None:
    """Why the S3 endpoint of ``uri`` is not usable now (named by setting), or ``None``."""
    from components.common import storage

    if not storage.is_remote(uri):
        return None
    try:
        storage.check_bucket(uri)
    except (StorageError, ConfigError) as e:
        return str(e)
    return None


def _submit(args: argparse.Namespace) -> int:
    from pipelines.kfp_client import Schedule, Target, parse_params, submit

    if not args.package.is_file():
        raise ConfigError(f"--package {args.package} does not exist: run `kfp-asr compile`")
    target = Target(
        host=args.host,
        namespace=args.namespace,
        experiment=args.experiment,
        service_account=args.service_account,
    )
    schedule = (
        Schedule(args.cron, args.max_concurrency, args.no_catchup)
        if args.command == "schedule"
        else None
    )
    result = submit(
        target, args.package, parse_params(args.package, args.param), args.run_name, schedule
    )
    created = f"recurring run {result.recurring_run_id}" if schedule else f"run {result.run_id}"
    print(
        f"{created} of pipeline {result.pipeline_id} version {result.version_id} "
        f"in experiment {result.experiment_id}"
    )
    return 0


def _profiles(_: argparse.Namespace) -> int:
    profiles, default = load_profiles()
    for name, p in profiles.items():
        accel = p.tasks["transcribe"].accelerator
        slot = f"{accel.type}: {accel.count}" if accel else "no accelerator"
        mark = " (default)" if name == default else ""
        print(
            f"{name}{mark}\n  {p.description}\n  transcribe: {slot}; queue {p.queue}; "
            f"parallelism {p.parallelism}; image {p.image}"
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfp-asr", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="compile the pipeline for a deployment profile")
    c.add_argument("--profile", help="deployment profile (default: profiles.yaml's default)")
    c.add_argument("--image", help="project image to run every step on (default: the profile's)")
    c.add_argument("-o", "--output", type=Path, default=DEFAULT_PACKAGE)
    c.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when the output file differs from a fresh compile",
    )
    c.set_defaults(func=_compile)

    r = sub.add_parser("run-local", help="run the whole pipeline on this machine (kfp.local)")
    r.add_argument("--input", required=True, help="folder or s3://bucket/prefix/ of audio")
    r.add_argument("--output", required=True, help="folder or s3://bucket/prefix/ for results")
    r.add_argument("--whisper-model", help="Whisper model name or checkpoint path")
    r.add_argument("--language", help="language code, or auto")
    r.add_argument("--beam-size", type=int)
    r.add_argument(
        "--batch-size",
        type=int,
        help="files Whisper decodes together; 0: the device default (cpu 4, cuda 64) "
        "capped by free memory; 1: the sequential reference path",
    )
    r.add_argument(
        "--long-form",
        choices=["sequential", "chunked"],
        help="sequential: a file's 30-s windows one after another; chunked: speech found by "
        "Silero VAD, cut into <= 30-s chunks decoded as parallel rows",
    )
    r.add_argument("--shards", dest="num_shards", type=int)
    r.add_argument("--llm-endpoint", help="OpenAI-compatible base URL ending in /v1")
    r.add_argument("--llm-model", help="served model name")
    r.add_argument("--max-tokens", type=int)
    r.add_argument(
        "--structured-max-tokens",
        type=int,
        help="token budget of a structured (JSON) summary request [1280]",
    )
    r.add_argument(
        "--concurrency",
        dest="max_concurrency",
        type=int,
        help="summary requests in flight per shard",
    )
    r.add_argument("--word-timestamps", action="store_true", help="word timings in segments")
    r.add_argument(
        "--channel-speakers", help="names of a call's channel speakers, e.g. agent,customer"
    )
    r.add_argument("--diarize", action="store_true", help="label the speakers of mono recordings")
    r.add_argument("--num-speakers", type=int, help="speakers per diarized file; 0: estimate")
    r.add_argument(
        "--initial-prompt",
        help="domain terms or a sample sentence, so Whisper spells them as given",
    )
    r.add_argument(
        "--no-structured-summary",
        dest="structured_summary",
        action="store_const",
        const=False,
        help="text summaries only (no JSON object with action items and topics)",
    )
    r.add_argument(
        "--redact",
        choices=("none", "outputs", "before_llm"),
        help="personal data: placeholders in the outputs (default), also before the LLM, or none",
    )
    r.add_argument(
        "--raw-output",
        dest="raw_output_uri",
        help="folder or s3:// prefix that keeps the unredacted transcripts too",
    )
    r.add_argument(
        "--reprocess",
        action="store_true",
        help="transcribe and summarize every input again with these settings, even those the "
        "output's ledger marks as finished (no stored result is reused)",
    )
    r.add_argument(
        "--retries",
        type=int,
        help="times a failed step runs again (default: the profile's, 2; the plan 0)",
    )
    r.add_argument(
        "--retry-backoff",
        metavar="DURATION",
        help="first wait before a step runs again, e.g. 0s (default: 30s or 60s, doubling)",
    )
    r.add_argument(
        "--verbose",
        action="store_true",
        help="show every line of kfp.local and the steps (executor inputs included)",
    )
    r.set_defaults(func=_run_local)

    for name, text in (
        ("submit", "upload the compiled pipeline and start a run"),
        ("schedule", "upload the compiled pipeline and create a recurring run"),
    ):
        s = sub.add_parser(name, help=text)
        s.add_argument("--host", required=True, help="KFP API server URL")
        s.add_argument("--namespace", default="asr-pipelines")
        s.add_argument("--experiment", default="asr-summarize")
        s.add_argument("--run-name", default="asr-summarize")
        s.add_argument("--service-account", default="asr-pipeline-runner")
        s.add_argument("--package", type=Path, default=DEFAULT_PACKAGE)
        s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
        if name == "schedule":
            s.add_argument(
                "--cron",
                required=True,
                help="6 fields, seconds first: '0 0 2 * * *' is daily at 02:00",
            )
            s.add_argument("--max-concurrency", type=int, default=1)
            s.add_argument(
                "--no-catchup",
                action="store_true",
                help="skip the runs missed while the schedule was paused",
            )
        s.set_defaults(func=_submit)

    p = sub.add_parser("profiles", help="list the deployment profiles")
    p.set_defaults(func=_profiles)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``kfp-asr`` console script."""
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"kfp-asr: error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except StorageError as e:  # the S3 endpoint failed past its retries (names MINIO_ENDPOINT)
        print(f"kfp-asr: error: {e}", file=sys.stderr)
        return EXIT_STEP_CRASHED
