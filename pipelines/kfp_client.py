"""Submit the compiled pipeline to a Kubeflow Pipelines server: a run or a recurring run.

The package is uploaded first (a new pipeline, or a new version of the pipeline of that
name), so the run in the UI links to the exact YAML it ran. Pipeline arguments are typed
from the package's own parameter definitions; an unknown name is a :class:`ConfigError`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kfp
import yaml

from components.common.errors import ConfigError

_CASTS = {
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "STRING": str,
    "BOOLEAN": lambda v: v.lower() in ("1", "true", "yes"),
}


@dataclass(frozen=True)
class Target:
    """Where and as whom to submit."""

    host: str
    namespace: str = "asr-pipelines"
    experiment: str = "asr-summarize"
    pipeline_name: str = "asr-summarize"
    service_account: str = "asr-pipeline-runner"


@dataclass(frozen=True)
class Schedule:
    """A cron schedule of 6 fields, seconds first (``0 0 2 * * *``: every day at 02:00)."""

    cron: str
    max_concurrency: int = 1
    no_catchup: bool = False


@dataclass(frozen=True)
class Submission:
    """What the server created."""

    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str = ""
    recurring_run_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def parse_params(package: Path, pairs: list[str]) -> dict[str, Any]:
    """``k=v`` strings as typed pipeline arguments, checked against the package's parameters."""
    spec = next(yaml.safe_load_all(package.read_text(encoding="utf-8")))  # then platform spec
    declared = spec["root"]["inputDefinitions"]["parameters"]
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--param {pair!r} is not NAME=VALUE")
        if name not in declared:
            raise ConfigError(
                f"--param {name} is not a pipeline parameter; "
                f"parameters: {', '.join(sorted(declared))}"
            )
        try:
            params[name] = _CASTS[declared[name]["parameterType"]](value)
        except ValueError as e:
            raise ConfigError(f"--param {name}={value!r}: {e}") from e
    return params


def _cron(expression: str) -> str:
    if len(expression.split()) != 6:
        raise ConfigError(
            f"--cron {expression!r} needs 6 fields, seconds first (e.g. '0 0 2 * * *')"
        )
    return expression


def upload(client: kfp.Client, package: Path, name: str) -> tuple[str, str]:
    """Upload ``package`` as pipeline ``name`` or as a new version of it; returns both ids."""
    pipeline_id = client.get_pipeline_id(name)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(package), pipeline_name=name).pipeline_id
        versions = client.list_pipeline_versions(
            pipeline_id, page_size=1, sort_by="created_at desc"
        ).pipeline_versions
        return pipeline_id, versions[0].pipeline_version_id
    digest = hashlib.sha256(package.read_bytes()).hexdigest()[:12]
    version_name = f"{name}-{digest}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    version = client.upload_pipeline_version(str(package), version_name, pipeline_id=pipeline_id)
    return pipeline_id, version.pipeline_version_id


def submit(
    target: Target,
    package: Path,
    params: dict[str, Any],
    run_name: str,
    schedule: Schedule | None = None,
) -> Submission:
    """Upload ``package`` and start a run, or a recurring run when ``schedule`` is given."""
    cron = _cron(schedule.cron) if schedule else None
    client = kfp.Client(host=target.host, namespace=target.namespace)
    pipeline_id, version_id = upload(client, package, target.pipeline_name)
    experiment = client.create_experiment(target.experiment, namespace=target.namespace)
    common = dict(
        experiment_id=experiment.experiment_id,
        job_name=run_name,
        params=params,
        pipeline_id=pipeline_id,
        version_id=version_id,
        service_account=target.service_account,
    )
    if schedule is None:
        run = client.run_pipeline(**common)
        return Submission(
            pipeline_id, version_id, experiment.experiment_id, run_id=run.run_id, params=params
        )
    recurring = client.create_recurring_run(
        **common,
        cron_expression=cron,
        max_concurrency=schedule.max_concurrency,
        no_catchup=schedule.no_catchup,
    )
    return Submission(
        pipeline_id,
        version_id,
        experiment.experiment_id,
        recurring_run_id=recurring.recurring_run_id,
        params=params,
    )
