"""``kfp-asr run-local``: the whole pipeline on this machine through ``kfp.local``.

Every step runs as a subprocess of this Python (``SubprocessRunner(use_venv=False)``), with
this package importable and the ``MINIO_*``/``LLM_API_KEY`` variables inherited, in a fresh
temporary pipeline root: kfp.local deletes its workspace after the run, so the user's
output folder is never handed to it. The report step writes the results to the output
URI; the run's figures come back from its ``metrics.json``.

Settings are checked before the first step starts, so a wrong one is a
:class:`ConfigError` naming it (exit code 2) rather than a failed subprocess.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from kfp import local

import components
from components.common import ledger, storage
from components.common.errors import ConfigError
from components.common.whisper_settings import check_language
from components.plan.planner import PlanOptions, holds_audio
from pipelines.asr_summarize import build_pipeline
from pipelines.profiles import PipelineDefaults, Profile

#: Profile whose parameter defaults run-local starts from (kfp.local ignores the rest).
LOCAL_PROFILE = "cpu"
#: Settings that must be positive, with the command-line flag that sets them.
_POSITIVE = {
    "num_shards": "--shards",
    "beam_size": "--beam-size",
    "max_tokens": "--max-tokens",
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
        params, input_uri=_absolute(params.input_uri), output_uri=_absolute(params.output_uri)
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
    if params.batch_size < 0:
        raise ConfigError(f"--batch-size must be 0 (auto) or more, got {params.batch_size}")
    return params


def run_local(profile: Profile, params: PipelineDefaults) -> dict[str, float | int]:
    """Run the pipeline under kfp.local and return the run's metrics (``metrics.json``)."""
    params = check_settings(params)
    package_root = str(Path(components.__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )
    with tempfile.TemporaryDirectory(prefix="kfp-asr-local-") as tmp:
        local.init(
            local.SubprocessRunner(use_venv=False),
            pipeline_root=str(Path(tmp) / "pipeline-root"),
            raise_on_error=True,
        )
        build_pipeline(profile)(**asdict(params))
    return json.loads(storage.read_text(storage.join(params.output_uri, "metrics.json")))
