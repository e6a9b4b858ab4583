"""``kfp-asr run-local``: the whole pipeline on this machine through ``kfp.local``.

Every step runs as a subprocess of this Python (``SubprocessRunner(use_venv=False)``), with
this package importable and the ``MINIO_*``/``LLM_API_KEY`` variables inherited, in a fresh
temporary pipeline root: kfp.local deletes its workspace after the run, so the user's
output folder is never handed to it. The report step writes the results to the output
URI; the run's figures come back from its ``metrics.json``.

Settings are checked before the first step starts, so a wrong one is a
:class:`ConfigError` naming it (exit code 2) rather than a failed subprocess.

Step processes: kfp.local has no hook for how it starts a step, so for the run
:func:`run_step` takes the place of its ``run_local_subprocess``. Each step runs under
:mod:`pipelines.step_guard` in its own process group, which is killed when this process
dies (even by ``kill -9``); its output goes to :class:`pipelines.progress.Progress`.

Temporary files: everything a run makes (kfp's pipeline root and workspace, the
``tmp.XXXX/ephemeral_component.py`` every step writes, the steps' own temporary files via
``TMPDIR``) lies in one folder of :mod:`pipelines.run_folder`, removed when the run ends;
the next run removes those of killed runs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

from kfp import local
from kfp.local import subprocess_task_handler

import components
from components.common import ledger, storage
from components.common.errors import ConfigError
from components.common.redact import check_mode
from components.common.whisper_settings import check_language
from components.plan.planner import PlanOptions, holds_audio
from pipelines.asr_summarize import build_pipeline
from pipelines.profiles import PipelineDefaults, Profile
from pipelines.progress import Progress
from pipelines.run_folder import clean_stale_runs, run_folder

#: Profile whose parameter defaults run-local starts from (kfp.local ignores the rest).
LOCAL_PROFILE = "cpu"
#: Settings that must be positive, with the command-line flag that sets them.
_POSITIVE = {
    "num_shards": "--shards",
    "beam_size": "--beam-size",
    "max_tokens": "--max-tokens",
    "structured_max_tokens": "--structured-max-tokens",
    "max_concurrency": "--concurrency",
}


def _absolute(uri: str) -> str:
    return uri if storage.is_remote(uri) else str(Path(uri).resolve())


def _check_whisper_model(name_or_path: str) -> None:
    import whisper

    if Path(name_or_path).is_file() or name_or_path in whisper.available_models():
        return
    raise ConfigError(
        f"--whisper-model {name_or_path!r} is neither a checkpoint file nor one "
        f"of {', '.join(whisper.available_models())}"
    )


def check_settings(params: PipelineDefaults) -> PipelineDefaults:
    """Validate the settings and return them with local paths made absolute."""
    params = replace(
        params,
        input_uri=_absolute(params.input_uri),
        output_uri=_absolute(params.output_uri),
        raw_output_uri=_absolute(params.raw_output_uri) if params.raw_output_uri else "",
    )
    check_mode(params.redact)
    raw, out = (uri.rstrip("/") + "/" for uri in (params.raw_output_uri, params.output_uri))
    if params.raw_output_uri and raw.startswith(out):
        raise ConfigError(
            f"--raw-output {params.raw_output_uri} is inside --output {params.output_uri}: "
            "unredacted transcripts must be kept apart"
        )
    if not holds_audio(params.input_uri, PlanOptions()):
        raise ConfigError(f"--input {params.input_uri} holds no audio files")
    if storage.is_remote(params.output_uri):
        ledger.check_output_prefix(params.output_uri, "--output")
        storage.check_bucket(params.output_uri)
    elif Path(params.output_uri).is_file():
        raise ConfigError(f"--output {params.output_uri} is a file, not a folder")
    _check_whisper_model(params.whisper_model)
    check_language(params.language, params.whisper_model, "--language", "--whisper-model")
    if not params.llm_endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"--llm-endpoint {params.llm_endpoint!r} is not an http(s) URL")
    for name, flag in _POSITIVE.items():
        if getattr(params, name) < 1:
            raise ConfigError(f"{flag} must be at least 1, got {getattr(params, name)}")
    if params.num_speakers < 0:
        raise ConfigError(f"--num-speakers must be 0 (estimate) or more, got {params.num_speakers}")
    if params.long_form not in ("sequential", "chunked"):
        raise ConfigError(f"--long-form must be sequential or chunked, got {params.long_form!r}")
    if params.batch_size < 0:
        raise ConfigError(f"--batch-size must be 0 (auto) or more, got {params.batch_size}")
    return params


def _stage(command: list[str]) -> str:
    """The KFP function a step command runs (``--function_to_execute NAME``)."""
    for flag, value in itertools.pairwise(command):
        if flag == "--function_to_execute":
            return value
    return "step"


@contextlib.contextmanager
def _steps_through(progress: Progress, tmp_dir: Path) -> Iterator[None]:
    """Make kfp.local start every step with :func:`run_step` while the block runs."""
    original = subprocess_task_handler.run_local_subprocess

    def run_local_subprocess(full_command: list[str], env_vars: dict | None = None) -> int:
        return run_step(full_command, env_vars, progress, tmp_dir)

    subprocess_task_handler.run_local_subprocess = run_local_subprocess
    try:
        yield
    finally:
        subprocess_task_handler.run_local_subprocess = original


def run_step(command: list[str], env_vars: dict | None, progress: Progress, tmp_dir: Path) -> int:
    """Run one step command under the step guard; its output goes to ``progress``.

    Args:
        command: The step's command line as kfp.local builds it.
        env_vars: Extra environment variables of the task.
        progress: Where the step's output lines go.
        tmp_dir: The step's ``TMPDIR`` (inside the run's folder).

    Returns:
        The step's exit status.
    """
    stage = _stage(command)
    env = {**os.environ, **(env_vars or {}), "TMPDIR": str(tmp_dir)}
    guarded = [sys.executable, "-m", "pipelines.step_guard", str(os.getpid()), "--", *command]
    stream = progress.step_started(stage)
    with subprocess.Popen(
        guarded,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        env=env,
    ) as process:
        for line in process.stdout:
            progress.step_line(stage, stream, line)
        returncode = process.wait()
    progress.step_ended(stage, returncode)
    return returncode


def run_local(
    profile: Profile, params: PipelineDefaults, verbose: bool = False
) -> dict[str, float | int]:
    """Run the pipeline under kfp.local and return the run's metrics (``metrics.json``).

    ``verbose`` shows every line of kfp.local and the steps (executor inputs included).
    """
    params = check_settings(params)
    clean_stale_runs()
    package_root = str(Path(components.__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )
    progress = Progress(sys.stdout, verbose)
    try:
        with (
            warnings.catch_warnings(),
            run_folder() as folder,
            _steps_through(progress, folder / "tmp"),
            contextlib.redirect_stdout(progress.stdout_proxy()),
        ):
            if not verbose:  # kfp.local's notes on settings it ignores and on the image
                warnings.filterwarnings("ignore", module=r"kfp\.local")
            local.init(
                local.SubprocessRunner(use_venv=False),
                pipeline_root=str(folder / "pipeline-root"),
                workspace_root=str(folder / "workspace"),
                raise_on_error=True,
            )
            build_pipeline(profile)(**asdict(params))
    finally:
        progress.close()
    return json.loads(storage.read_text(storage.join(params.output_uri, "metrics.json")))
