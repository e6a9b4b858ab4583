"""Find and load Whisper weights: present weights first, a download only as the last resort.

``whisper_model`` resolves in this order (docs/compatibility.md, "Whisper weights"):

1. **An explicit checkpoint path**: that file (it must exist).
2. **Weights baked into the image**: ``$WHISPER_IMAGE_WEIGHTS/<file>`` (the Dockerfile's
   ``--build-arg WHISPER_MODEL=...`` puts them in ``/opt/whisper-weights``).
3. **The model cache volume** (emptyDir or PVC): ``$WHISPER_CACHE_DIR/<file>`` for a model
   name; for an ``s3://`` URI, its copy under ``$WHISPER_CACHE_DIR/s3/<bucket>/<key>`` whose
   recorded ETag and size still match the object.
4. **An ``s3://`` object** (air-gapped clusters keep weights in MinIO): fetched once into
   the cache.
5. **A download** from openai-whisper's URL (SHA-256 checked), into the cache.

``<file>`` is openai-whisper's own file name of the model (``medium.pt``,
``large-v3.pt``, ``large-v3-turbo.pt`` for ``turbo``). A present file is never downloaded
again, and it is trusted as it is: downloads land under a temporary name and are renamed
into place, so a killed download leaves no partial file behind. A present file that cannot
be loaded is a :class:`ConfigError` naming it, not a reason to download.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import whisper
from whisper.model import ModelDimensions, Whisper

from components.common import storage
from components.common.errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable naming the folder of weights baked into the image.
IMAGE_WEIGHTS_ENV = "WHISPER_IMAGE_WEIGHTS"
#: Environment variable naming the model cache (a volume in the cluster).
CACHE_DIR_ENV = "WHISPER_CACHE_DIR"


def default_cache_dir() -> str:
    """``$WHISPER_CACHE_DIR``, else openai-whisper's own default (``~/.cache/whisper``)."""
    if os.environ.get(CACHE_DIR_ENV):
        return os.environ[CACHE_DIR_ENV]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "whisper")


def image_weights_dir() -> str | None:
    """``$WHISPER_IMAGE_WEIGHTS`` (the image's folder of baked weights), if set."""
    return os.environ.get(IMAGE_WEIGHTS_ENV) or None


@dataclass(frozen=True)
class ResolvedWeights:
    """A local checkpoint file and where it came from (``path``, ``image``, ``cache``,
    ``s3`` or ``download``)."""

    path: Path
    origin: str


def weights_file(name: str) -> str:
    """openai-whisper's file name for a model name (``turbo`` -> ``large-v3-turbo.pt``)."""
    return os.path.basename(whisper._MODELS[name])


def half_weights(model: Whisper) -> Whisper:
    """``model`` with its weights stored in float16, its LayerNorms left in float32.

    openai-whisper keeps float32 weights and casts each one to the input's dtype at every
    call (``whisper.model.Linear``/``Conv1d``), so in fp16 decoding the GPU holds twice the
    weights' size and every decoder step re-reads and converts them all. Stored in float16
    they give the same products (the cast of a float16 weight is a no-op), in half the
    memory: large-v3 needs 2.9 GiB instead of 5.8 GiB, so it fits a 1g.5gb MIG slice.
    whisper's LayerNorm computes in float32 and its weights stay so.
    """
    norms = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters()
    }
    for param in model.parameters():
        if id(param) not in norms:
            param.data = param.data.half()
    return model


def load_checkpoint(path: str | os.PathLike, device: str, fp16: bool = False) -> Whisper:
    """A Whisper model from an openai-whisper checkpoint file, on ``device``.

    A checkpoint that carries ``alignment_heads_b85`` (as converted checkpoints do) gets
    those word-alignment heads; openai-whisper would leave default heads for a file path.
    The file is read into host memory, so that the device never holds the checkpoint and
    the model at once. ``fp16`` stores the weights in float16 (:func:`half_weights`).
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        dims = ModelDimensions(**checkpoint["dims"])
        model = Whisper(dims)
        model.load_state_dict(checkpoint["model_state_dict"])
    except Exception as e:  # any unreadable file is the same configuration problem
        raise ConfigError(
            f"whisper_model: {path} is not an openai-whisper checkpoint ({type(e).__name__}: {e})"
        ) from e
    heads = checkpoint.get("alignment_heads_b85")
    if heads:
        model.set_alignment_heads(heads.encode() if isinstance(heads, str) else heads)
    if fp16:
        half_weights(model)
    return model.to(device)


def fetch_checkpoint(uri: str, cache_dir: str | os.PathLike) -> ResolvedWeights:
    """An ``s3://`` checkpoint from the cache (``cache_dir/s3/<bucket>/<key>``) or fetched once.

    A copy whose recorded ETag and size still match the object is reused, so a cache on a
    volume serves every shard after the first.
    """
    bucket, key = storage.split_s3_uri(uri)
    root = Path(cache_dir) / "s3" / bucket
    info = next(
        (o for o in storage.list_objects(uri) if storage.split_s3_uri(o.uri)[1] == key), None
    )
    if info is None:
        raise ConfigError(f"whisper_model: no checkpoint object at {uri}")
    dest = storage.safe_join(root, key)
    marker = dest.with_name(dest.name + ".etag")
    if (
        dest.is_file()
        and marker.is_file()
        and marker.read_text() == info.etag
        and dest.stat().st_size == info.size
    ):
        log.info("whisper_model %s: using the cached copy %s", uri, dest)
        return ResolvedWeights(dest, "cache")
    started = time.monotonic()
    path = storage.download(uri, root)
    marker.write_text(info.etag)
    log.info(
        "whisper_model %s: fetched %.1f MB in %.1f s",
        uri,
        info.size / 1e6,
        time.monotonic() - started,
    )
    return ResolvedWeights(path, "s3")


def download_weights(name: str, cache_dir: str | os.PathLike) -> Path:
    """Download a named model into ``cache_dir`` (SHA-256 checked by openai-whisper).

    The file is downloaded into a temporary folder beside its destination and renamed into
    place, so the cache never holds a partial file.
    """
    dest = Path(cache_dir) / weights_file(name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
        # openai-whisper's own downloader (its URL carries the SHA-256 it checks).
        downloaded = whisper._download(whisper._MODELS[name], tmp, in_memory=False)
        os.replace(downloaded, dest)
    return dest


def resolve_weights(
    spec: str, cache_dir: str | os.PathLike, image_dir: str | os.PathLike | None = None
) -> ResolvedWeights:
    """The local checkpoint file for ``spec``, in the order of the module docstring.

    Raises :class:`ConfigError` naming ``whisper_model`` for an unknown name, a missing file
    or object, or a name whose weights are nowhere present and cannot be downloaded.
    """
    if storage.is_remote(spec):
        return fetch_checkpoint(spec, cache_dir)
    if spec in whisper.available_models():
        file = weights_file(spec)
        for folder, origin in ((image_dir, "image"), (cache_dir, "cache")):
            if folder and (Path(folder) / file).is_file():
                return ResolvedWeights(Path(folder) / file, origin)
        try:
            return ResolvedWeights(download_weights(spec, cache_dir), "download")
        except (OSError, RuntimeError) as e:  # URLError included: no network, no mirror
            places = ", ".join(str(Path(f) / file) for f in (image_dir, cache_dir) if f)
            raise ConfigError(
                f"whisper_model={spec!r}: no weights at {places} and the download failed "
                f"({type(e).__name__}: {e}); bake them into the image (--build-arg "
                "WHISPER_MODEL), put them in the model cache volume, or give a checkpoint "
                "path or an s3:// URI"
            ) from e
    if os.sep in spec or "/" in spec or spec.endswith(".pt"):
        if not os.path.isfile(spec):
            raise ConfigError(f"whisper_model: checkpoint file {spec} does not exist")
        return ResolvedWeights(Path(spec), "path")
    raise ConfigError(
        f"whisper_model={spec!r} is not a Whisper model name "
        f"({', '.join(whisper.available_models())}), a checkpoint path or an s3:// URI"
    )


def load_model(
    spec: str,
    device: str | None = None,
    cache_dir: str | None = None,
    image_dir: str | None = None,
    fp16: bool = False,
) -> Whisper:
    """Load Whisper from a model name, a checkpoint path or an ``s3://`` checkpoint URI.

    ``device`` defaults to CUDA when present, ``cache_dir`` to :func:`default_cache_dir`,
    ``image_dir`` to :func:`image_weights_dir`. A named model gets openai-whisper's
    word-alignment heads for that name, as ``whisper.load_model(name)`` would give it.
    ``fp16`` keeps the weights in float16 on a CUDA device (:func:`half_weights`); on a CPU,
    where decoding runs in float32, it is ignored.
    """
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    cache_dir = cache_dir or default_cache_dir()
    image_dir = image_dir or image_weights_dir()
    started = time.monotonic()
    weights = resolve_weights(spec, cache_dir, image_dir)
    fp16 = fp16 and torch.device(device).type == "cuda"
    model = load_checkpoint(weights.path, device, fp16)
    if spec in whisper.available_models():
        model.set_alignment_heads(whisper._ALIGNMENT_HEADS[spec])
    log.info(
        "loaded Whisper %s (%s: %s) on %s%s in %.1f s",
        spec,
        weights.origin,
        weights.path,
        device,
        " (float16 weights)" if fp16 else "",
        time.monotonic() - started,
    )
    return model
