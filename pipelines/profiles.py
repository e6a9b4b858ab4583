"""Deployment profiles: the compile-time settings of one kind of cluster, read from profiles.yaml.

A profile is data; :mod:`pipelines.asr_summarize` applies every field the same way for every
profile, so adding a cluster means adding a YAML entry, not code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from components.common.errors import ConfigError

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")
STEPS = ("plan", "transcribe", "summarize", "report")


@dataclass(frozen=True)
class Accelerator:
    """An extended resource limit such as ``nvidia.com/mig-1g.5gb: 1``."""

    type: str
    count: int = 1


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration."""

    key: str | None = None
    operator: str | None = None
    value: str | None = None
    effect: str | None = None


@dataclass(frozen=True)
class TaskSettings:
    """Resources, scheduling constraints and retries of one step's pods.

    ``retries``: times a failed pod is run again, after ``retry_backoff`` (a duration such
    as ``30s``), doubling each time. A deleted or evicted pod is retried only when KFP's Argo
    has a retryPolicy that covers errors (manifests/components/argo-retry-policy).
    """

    accelerator: Accelerator | None
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    retries: int = 2
    retry_backoff: str = "30s"


@dataclass(frozen=True)
class Secrets:
    """Names of the Kubernetes Secrets the steps read as environment variables."""

    minio: str
    llm_api_key: str


@dataclass(frozen=True)
class ModelCache:
    """Where Whisper weights are kept: a PVC when ``pvc`` is set, else an emptyDir."""

    path: str
    pvc: str | None = None
    size_limit: str | None = None


@dataclass(frozen=True)
class PipelineDefaults:
    """Defaults of the pipeline parameters."""

    input_uri: str
    output_uri: str
    whisper_model: str
    language: str
    beam_size: int
    batch_size: int
    num_shards: int
    llm_endpoint: str
    llm_model: str
    max_tokens: int
    max_concurrency: int
    structured_max_tokens: int = 1280
    reprocess: bool = False
    initial_prompt: str = ""
    structured_summary: bool = True
    redact: str = "outputs"
    raw_output_uri: str = ""
    word_timestamps: bool = False
    channel_speakers: str = ""
    diarize: bool = False
    num_speakers: int = 0
    long_form: str = "sequential"


@dataclass(frozen=True)
class Profile:
    """Everything that differs between clusters, fixed when the pipeline is compiled."""

    name: str
    description: str
    image: str
    queue: str
    priority_class: str
    parallelism: int
    secrets: Secrets
    model_cache: ModelCache
    params: PipelineDefaults
    tasks: dict[str, TaskSettings]

    @property
    def pod_labels(self) -> dict[str, str]:
        """Kueue labels of the queued steps' pods (an empty priority class adds no label)."""
        labels = {
            "kueue.x-k8s.io/queue-name": self.queue,
            "kueue.x-k8s.io/priority-class": self.priority_class,
        }
        return {k: v for k, v in labels.items() if v}

    def with_retries(self, retries: int | None = None, backoff: str | None = None) -> Profile:
        """This profile with every step's retry count and/or first backoff replaced."""
        changes = {
            k: v for k, v in (("retries", retries), ("retry_backoff", backoff)) if v is not None
        }
        return replace(self, tasks={step: replace(t, **changes) for step, t in self.tasks.items()})


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it; nested mappings merge, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _task(data: dict[str, Any]) -> TaskSettings:
    accelerator = data.get("accelerator")
    return TaskSettings(
        accelerator=Accelerator(**accelerator) if accelerator else None,
        cpu_request=str(data["cpu_request"]),
        cpu_limit=str(data["cpu_limit"]),
        memory_request=str(data["memory_request"]),
        memory_limit=str(data["memory_limit"]),
        node_selector={str(k): str(v) for k, v in (data.get("node_selector") or {}).items()},
        tolerations=tuple(Toleration(**t) for t in data.get("tolerations") or ()),
        retries=int(data.get("retries", 2)),
        retry_backoff=str(data.get("retry_backoff", "30s")),
    )


def _profile(name: str, data: dict[str, Any]) -> Profile:
    try:
        return Profile(
            name=name,
            description=" ".join(str(data["description"]).split()),
            image=data["image"],
            queue=data["queue"],
            priority_class=data.get("priority_class") or "",
            parallelism=int(data["parallelism"]),
            secrets=Secrets(**data["secrets"]),
            model_cache=ModelCache(**data["model_cache"]),
            params=PipelineDefaults(**data["params"]),
            tasks={step: _task(data["tasks"][step]) for step in STEPS},
        )
    except (KeyError, TypeError) as e:
        raise ConfigError(f"profile {name!r} in {PROFILES_FILE.name} is incomplete: {e}") from e


def load_profiles(path: Path = PROFILES_FILE) -> tuple[dict[str, Profile], str]:
    """Every profile of ``path`` by name, and the name of the default profile."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    profiles = {
        name: _profile(name, deep_merge(data["defaults"], entry or {}))
        for name, entry in data["profiles"].items()
    }
    if data["default"] not in profiles:
        raise ConfigError(f"default profile {data['default']!r} is not in {path.name}")
    return profiles, data["default"]


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name`` (the default profile when ``None``)."""
    profiles, default = load_profiles()
    name = name or default
    if name not in profiles:
        raise ConfigError(f"--profile {name!r} is unknown; profiles: {', '.join(profiles)}")
    return profiles[name]
