"""The compiled pipeline: byte-for-byte current, and every profile setting where KFP reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.asr_summarize import compile_pipeline
from pipelines.cli import main
from pipelines.profiles import load_profiles

REPO = Path(__file__).resolve().parent.parent
COMPILED = REPO / "compiled" / "asr_summarize.yaml"
PROFILES, DEFAULT = load_profiles()
SECRET_VALUE = "s3cr3t-value-that-must-never-be-compiled"


def _compile(tmp_path: Path, profile: str | None = None, image: str | None = None):
    path = compile_pipeline(profile, tmp_path / f"{profile or 'default'}.yaml", image)
    spec, platform = yaml.safe_load_all(path.read_text())
    return path, spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_compiled_folder_is_current(tmp_path: Path) -> None:
    fresh, _, _ = _compile(tmp_path)
    assert COMPILED.read_bytes() == fresh.read_bytes(), "run `kfp-asr compile` and commit it"


def test_compile_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", "--check", "-o", str(COMPILED)]) == 0
    stale = tmp_path / "stale.yaml"
    stale.write_bytes(COMPILED.read_bytes().replace(b"asr-queue", b"old-queue"))
    assert main(["compile", "--check", "-o", str(stale)]) == 1
    assert main(["compile", "--check", "-o", str(tmp_path / "missing.yaml")]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["compile", "-o", str(stale)]) == 0
    assert main(["compile", "--check", "-o", str(stale)]) == 0


def test_unknown_profile_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["compile", "--profile", "tpu-v5", "-o", "/dev/null"]) == 2
    assert "--profile 'tpu-v5' is unknown" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(PROFILES))
def test_profile_reaches_the_executors(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("MINIO_SECRET_KEY", "MINIO_ACCESS_KEY", "LLM_API_KEY"):
        monkeypatch.setenv(var, SECRET_VALUE)
    profile = PROFILES[name]
    path, spec, k8s = _compile(tmp_path, name)
    assert SECRET_VALUE not in path.read_text()

    executors = spec["deploymentSpec"]["executors"]
    resources = executors["exec-transcribe"]["container"]["resources"]
    accel = profile.tasks["transcribe"].accelerator
    if accel:
        assert resources["accelerator"]["resourceType"] == accel.type
        assert resources["accelerator"]["resourceCount"] == str(accel.count)
    else:
        assert "accelerator" not in resources
    assert resources["resourceMemoryLimit"] == profile.tasks["transcribe"].memory_limit
    assert {e["container"]["image"] for e in executors.values()} == {profile.image}

    for step in ("transcribe", "summarize"):
        assert k8s[f"exec-{step}"]["podMetadata"]["labels"] == profile.pod_labels
        assert profile.pod_labels["kueue.x-k8s.io/queue-name"] == profile.queue
    for step in ("plan", "report"):
        assert "podMetadata" not in k8s[f"exec-{step}"]
    for step in ("plan", "transcribe", "summarize", "report"):  # every step uses the bucket
        (minio,) = [
            s
            for s in k8s[f"exec-{step}"]["secretAsEnv"]
            if s["secretName"] == profile.secrets.minio
        ]
        assert {m["envVar"] for m in minio["keyToEnv"]} == {
            "MINIO_ENDPOINT",
            "MINIO_ACCESS_KEY",
            "MINIO_SECRET_KEY",
            "MINIO_SECURE",
        }
    (llm,) = [
        s
        for s in k8s["exec-summarize"]["secretAsEnv"]
        if s["secretName"] == profile.secrets.llm_api_key
    ]
    assert llm["optional"] is True

    (cache,) = k8s["exec-transcribe"]["emptyDirMounts"]
    assert cache["mountPath"] == profile.model_cache.path
    env = {e["name"]: e["value"] for e in executors["exec-transcribe"]["container"]["env"]}
    assert env["WHISPER_CACHE_DIR"] == profile.model_cache.path
    assert (
        k8s["exec-transcribe"].get("nodeSelector", {}).get("labels", {})
        == profile.tasks["transcribe"].node_selector
    )
    assert len(k8s["exec-transcribe"].get("tolerations", [])) == len(
        profile.tasks["transcribe"].tolerations
    )

    loop = spec["root"]["dag"]["tasks"]["for-loop-1"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == profile.parallelism
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["num_shards"]["defaultValue"] == profile.params.num_shards
    assert params["whisper_model"]["defaultValue"] == profile.params.whisper_model
    assert all(p.get("description") for p in params.values())
    assert name in spec["pipelineInfo"]["description"]


def test_tasks_have_names_retries_and_no_cache_where_a_bucket_is_read(tmp_path: Path) -> None:
    _, spec, _ = _compile(tmp_path)
    tasks = dict(spec["root"]["dag"]["tasks"])
    tasks.update(spec["components"]["comp-for-loop-1"]["dag"]["tasks"])
    names = {k: t["taskInfo"]["name"] for k, t in tasks.items() if k != "for-loop-1"}
    assert names == {
        "plan": "plan shards",
        "transcribe": "transcribe shard",
        "summarize": "summarize shard",
        "report": "report",
    }
    for step in ("plan", "transcribe", "summarize", "report"):  # all write to the output
        assert tasks[step]["cachingOptions"] == {}, step  # enableCache: false is omitted
    retries = {s: tasks[s]["retryPolicy"].get("maxRetryCount", 0) for s in names}
    assert retries == {"plan": 0, "transcribe": 2, "summarize": 2, "report": 2}  # plan: no retry
    for comp in ("comp-plan", "comp-transcribe", "comp-summarize", "comp-report"):
        assert spec["components"][comp]["inputDefinitions"]
    outputs = spec["components"]["comp-report"]["outputDefinitions"]["artifacts"]
    assert all(o.get("description") for o in outputs.values())


def test_image_override(tmp_path: Path) -> None:
    _, spec, _ = _compile(tmp_path, "cpu", image="registry.local/asr:dev")
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.local/asr:dev"}


def test_profiles_command_lists_every_profile(capsys: pytest.CaptureFixture) -> None:
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT} (default)" in out
    for name in ("a100-40gb-das", "h100-80gb-das", "whole-gpu", "cpu"):
        assert name in out
    assert "nvidia.com/mig-1g.5gb: 1" in out and "nvidia.com/mig-1g.10gb: 1" in out
