"""The compiled pipeline: byte-for-byte current, every profile setting where KFP reads it, and
nothing that the oldest supported KFP backend (docs/compatibility.md) cannot run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.rpc import status_pb2

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
    assert {m["envVar"] for m in llm["keyToEnv"]} == {"LLM_API_KEY"}

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


# ---------------------------------------------------------------- the supported KFP backends

#: The oldest KFP backend the compiled YAML supports (docs/compatibility.md). Its API server
#: parses the pipeline and platform specs strictly (protojson.Unmarshal in
#: backend/src/apiserver/template/v2_template.go): an unknown field rejects the run.
FLOOR = "2.14.0"
FLOOR_PROTOS = REPO / "tests" / "data" / f"kfp_backend_{FLOOR}"
LOOP_NAME = re.compile(r"for-loop-\d+")


def _well_known_protos(protoc: str) -> Path:
    candidates = [Path(protoc).resolve().parent.parent / "include", Path("/usr/include")]
    for folder in candidates:
        if (folder / "google" / "protobuf" / "struct.proto").is_file():
            return folder
    pytest.skip("protoc's google/protobuf/*.proto are missing: apt-get install libprotobuf-dev")


@pytest.fixture(scope="module")
def floor_messages(tmp_path_factory: pytest.TempPathFactory) -> tuple[type, type]:
    """PipelineSpec and KubernetesExecutorConfig as KFP backend ``FLOOR`` defines them."""
    protoc = shutil.which("protoc")
    if protoc is None:
        pytest.skip("protoc is missing: apt-get install protobuf-compiler libprotobuf-dev")
    out = tmp_path_factory.mktemp("floor") / "floor.pb"
    rpc_protos = Path(status_pb2.__file__).resolve().parent.parent.parent  # google/rpc/status.proto
    subprocess.run(
        [
            protoc,
            f"-I{FLOOR_PROTOS}",
            f"-I{_well_known_protos(protoc)}",
            f"-I{rpc_protos}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            "pipeline_spec.proto",
            "kubernetes_executor_config.proto",
        ],
        check=True,
        cwd=FLOOR_PROTOS,
    )
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
        for name in ("ml_pipelines.PipelineSpec", "kfp_kubernetes.KubernetesExecutorConfig")
    )


def _compiled_variants(tmp_path: Path) -> dict[str, tuple[dict, dict]]:
    variants = {"compiled/": tuple(yaml.safe_load_all(COMPILED.read_text()))}
    for name in PROFILES:
        path = compile_pipeline(name, tmp_path / f"{name}.yaml")
        variants[name] = tuple(yaml.safe_load_all(path.read_text()))
    return variants


def test_the_floor_backend_parses_every_compiled_profile(
    floor_messages: tuple[type, type], tmp_path: Path
) -> None:
    """What 2.14's API server does with an upload: strict parsing, unknown fields rejected.
    (kfp-kubernetes 2.15+ writes ``optional`` into every secretAsEnv: 2.14 rejects it.)"""
    pipeline_spec, executor_config = floor_messages
    for variant, (spec, platform) in _compiled_variants(tmp_path).items():
        json_format.ParseDict(spec, pipeline_spec())
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for name, config in executors.items():
            try:
                json_format.ParseDict(config, executor_config())
            except json_format.ParseError as e:
                pytest.fail(f"{variant} {name}: KFP backend {FLOOR} rejects it: {e}")


def test_the_floor_check_rejects_what_the_floor_cannot_parse(
    floor_messages: tuple[type, type],
) -> None:
    _, executor_config = floor_messages
    entry = {"secretName": "s", "keyToEnv": [{"secretKey": "K", "envVar": "K"}]}
    json_format.ParseDict({"secretAsEnv": [entry]}, executor_config())
    with pytest.raises(json_format.ParseError, match="optional"):
        json_format.ParseDict({"secretAsEnv": [{**entry, "optional": False}]}, executor_config())


def _dags(spec: dict) -> dict[str, dict]:
    dags = {"root": spec["root"]["dag"]}
    dags.update({n: c["dag"] for n, c in spec["components"].items() if "dag" in c})
    return dags


def test_no_construct_a_supported_backend_cannot_run(tmp_path: Path) -> None:
    """The constructs docs/compatibility.md rules out, checked without protoc."""
    for variant, (spec, platform) in _compiled_variants(tmp_path).items():
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for name, config in executors.items():
            for secret in config.get("secretAsEnv", []):
                # Optional Secrets exist from backend 2.15 (kubeflow/pipelines PR #12216).
                assert "optional" not in secret, f"{variant} {name}: optional Secret"
        for dag in _dags(spec).values():
            for task_name, task in dag["tasks"].items():
                if "parameterIterator" not in task and "artifactIterator" not in task:
                    continue
                # A named ParallelFor breaks dsl.Collected on 2.15 (kubeflow/pipelines#13239).
                assert LOOP_NAME.fullmatch(task_name), f"{variant}: loop named {task_name}"
                assert task["taskInfo"]["name"] == task_name
                _check_loop_items(spec, variant, task)


def _check_loop_items(spec: dict, variant: str, loop: dict) -> None:
    """The loop iterates over a task output, and its item only fills integer inputs: a shard
    index, whatever the number of files (docs/compatibility.md, "Argument sizes")."""
    iterator = loop["parameterIterator"]
    producer = iterator["items"]["inputParameter"]
    assert loop["inputs"]["parameters"][producer]["taskOutputParameter"], variant
    item = iterator["itemInput"]
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    consumers = 0
    for task in body.values():
        inputs = spec["components"][task["componentRef"]["name"]]["inputDefinitions"]
        for name, value in task["inputs"].get("parameters", {}).items():
            if value.get("componentInputParameter") == item:
                assert inputs["parameters"][name]["parameterType"] == "NUMBER_INTEGER", name
                consumers += 1
    assert consumers, f"{variant}: no task reads the loop item"


def test_the_model_cache_volume_never_hides_the_images_weights(tmp_path: Path) -> None:
    """The image's baked weights live outside the cache volume every profile mounts, and the
    transcribe step's environment does not point the image folder anywhere else."""
    dockerfile = (REPO / "Dockerfile").read_text()
    image_dir = Path(re.search(r"WHISPER_IMAGE_WEIGHTS=(\S+)", dockerfile).group(1))
    assert re.search(r"download_weights\(.*os\.environ\['WHISPER_IMAGE_WEIGHTS'\]", dockerfile)
    for name, profile in PROFILES.items():
        cache = Path(profile.model_cache.path)
        assert cache != image_dir and cache not in image_dir.parents, name
        _, spec, _ = _compile(tmp_path, name)
        container = spec["deploymentSpec"]["executors"]["exec-transcribe"]["container"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        assert "WHISPER_IMAGE_WEIGHTS" not in env, name
        assert env["WHISPER_CACHE_DIR"] == str(cache)
