"""Read and write objects by URI: ``s3://bucket/key`` through the ``minio`` SDK, or local paths.

The S3 connection comes from environment variables that a Kubernetes Secret fills, never
from pipeline parameters:

- ``MINIO_ENDPOINT``: ``host:port`` or ``http(s)://host:port``
- ``MINIO_ACCESS_KEY``, ``MINIO_SECRET_KEY``
- ``MINIO_SECURE``: ``true``/``false`` (default: true only for an ``https://`` endpoint)
- ``MINIO_REGION``: optional; saves a bucket-location request per bucket
- ``MINIO_MAX_RETRIES``: attempts after a connection error or a 5xx answer (default 6,
  exponential backoff from 0.5 s, about 30 s in all)

Only the S3 API is used (no MinIO-only calls), so SeaweedFS, Ceph RGW or AWS S3 work too.
Object keys are untrusted: :func:`safe_join` keeps every download inside its work folder,
and :func:`fit_key` makes keys derived from them fit the limits of local filesystems (255
bytes per path component) and S3 (1,024 bytes per key).
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from components.common.errors import ConfigError, StorageError, UnsafeKeyError

log = logging.getLogger(__name__)

S3_SCHEMES = ("s3://", "minio://")
#: Extensions taken as audio without a look inside; other files count as audio when ffprobe
#: finds an audio stream in them (the planner decides).
AUDIO_EXTENSIONS = (
    ".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".amr", ".3gp",
    ".webm", ".mka", ".mp4", ".mov", ".mkv", ".wma", ".aif", ".aiff", ".caf", ".au",
)  # fmt: skip
#: Upload part size: objects above it go through the SDK's multipart path.
PART_SIZE = 16 * 1024 * 1024
#: Longest path component of local filesystems (ext4, XFS, Btrfs, APFS, NTFS), in bytes.
MAX_COMPONENT_BYTES = 255
#: Longest S3 object key, in bytes (AWS S3, MinIO).
MAX_KEY_BYTES = 1024
#: Longest path component of a downloaded copy: room for the SDK's ``.<etag>.part.minio``.
DOWNLOAD_COMPONENT_BYTES = 160
#: Hex digits of the SHA-256 in a shortened component (64 bits).
DIGEST_CHARS = 16
#: The longest extension a shortened component keeps, in bytes.
MAX_EXTENSION_BYTES = 16
#: What every shortened component ends in: ``~``, the digest, an optional extension.
_SHORTENED = re.compile(rf"~[0-9a-f]{{{DIGEST_CHARS}}}(\.[^./]*)?\Z")

_CREDENTIAL_ERRORS = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its URI, size in bytes and ETag (a content hash for local files)."""

    uri: str
    size: int
    etag: str


@dataclass(frozen=True)
class S3Settings:
    """Connection settings of the S3/MinIO endpoint."""

    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    region: str | None = None
    max_retries: int = 6

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> S3Settings:
        """Read ``MINIO_*`` variables; a missing one is a :class:`ConfigError` naming it."""
        env = os.environ if env is None else env
        missing = [
            v for v in ("MINIO_ENDPOINT", "MINIO_ACCESS_KEY", "MINIO_SECRET_KEY") if not env.get(v)
        ]
        if missing:
            raise ConfigError(
                f"s3:// URIs need {', '.join(missing)} in the environment "
                "(in the cluster: the Secret asr-minio-credentials)"
            )
        raw = env["MINIO_ENDPOINT"].strip()
        parts = urlsplit(raw if "://" in raw else f"//{raw}")
        if not parts.hostname:
            raise ConfigError(f"MINIO_ENDPOINT={raw!r} is not host:port or a URL")
        secure_env = env.get("MINIO_SECURE", "").strip().lower()
        secure = secure_env in _TRUE if secure_env else parts.scheme == "https"
        try:
            retries = int(env.get("MINIO_MAX_RETRIES", "6"))
        except ValueError as e:
            raise ConfigError(f"MINIO_MAX_RETRIES must be an integer: {e}") from e
        return cls(
            endpoint=parts.netloc,
            access_key=env["MINIO_ACCESS_KEY"],
            secret_key=env["MINIO_SECRET_KEY"],
            secure=secure,
            region=env.get("MINIO_REGION") or None,
            max_retries=retries,
        )

    def __repr__(self) -> str:  # never show the keys
        return f"S3Settings(endpoint={self.endpoint!r}, secure={self.secure})"


def is_remote(uri: str) -> bool:
    """True for ``s3://`` (and ``minio://``) URIs, false for local paths."""
    return uri.startswith(S3_SCHEMES)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b.wav`` -> ``("bucket", "a/b.wav")``."""
    if not is_remote(uri):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ConfigError(f"no bucket in URI {uri!r} (expected s3://bucket/prefix)")
    return bucket, key


def _local(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")  # undecodable local names included


def shorten(component: str, max_bytes: int, digest_of: str | None = None) -> str:
    """``component`` cut to at most ``max_bytes`` bytes: a UTF-8-safe prefix of its stem, ``~``,
    the first 16 hex digits of the SHA-256 of ``digest_of`` (default: ``component``), and its
    extension (when at most 16 bytes). The same input gives the same name in every run.
    """
    extension = PurePosixPath(component).suffix
    if len(_utf8(extension)) > MAX_EXTENSION_BYTES:
        extension = ""
    stem = component[: len(component) - len(extension)]
    source = component if digest_of is None else digest_of
    digest = hashlib.sha256(_utf8(source)).hexdigest()[:DIGEST_CHARS]
    room = max_bytes - len(_utf8(extension)) - 1 - DIGEST_CHARS
    prefix = _utf8(stem)[: max(room, 0)].decode("utf-8", "ignore")
    return f"{prefix}~{digest}{extension}"


def fit_component(component: str, max_bytes: int = MAX_COMPONENT_BYTES) -> str:
    """``component`` itself when it fits in ``max_bytes`` and does not look shortened, else
    :func:`shorten` of it.

    Kept components never end like a shortened one (``~`` + 16 hex digits + extension), and
    a shortened one carries the digest of the whole original, so two different components
    never give the same result (short of a 64-bit SHA-256 collision).
    """
    if len(_utf8(component)) <= max_bytes and not _SHORTENED.search(component):
        return component
    return shorten(component, max_bytes)


def fit_key(key: str, max_component_bytes: int, max_bytes: int) -> str:
    """A relative key whose every component fits ``max_component_bytes`` and whose whole
    length fits ``max_bytes``, unique per ``key`` (see :func:`fit_component`).

    Components are fitted one by one, so the inputs of one long folder stay together; a key
    still longer than ``max_bytes`` becomes one component: its base name shortened with the
    digest of the whole key.
    """
    fitted = "/".join(fit_component(part, max_component_bytes) for part in key.split("/"))
    if len(_utf8(fitted)) <= max_bytes:
        return fitted
    return shorten(key.rsplit("/", 1)[-1], min(max_component_bytes, max_bytes), digest_of=key)


def safe_join(root: str | os.PathLike, key: str) -> Path:
    """``root/key`` for an untrusted object key; raises :class:`UnsafeKeyError` if it escapes.

    Absolute keys, ``..`` components and empty keys are refused, whatever the platform.
    """
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if not parts or key.startswith(("/", "\\")) or any(p in ("..", "") for p in parts):
        raise UnsafeKeyError(f"object key {key!r} would leave the work folder")
    root_path = Path(root).resolve()
    path = root_path.joinpath(*parts).resolve()
    if not path.is_relative_to(root_path):
        raise UnsafeKeyError(f"object key {key!r} would leave the work folder")
    return path


@functools.lru_cache(maxsize=8)
def _client_for(settings: S3Settings) -> Minio:
    retry = urllib3.Retry(
        total=settings.max_retries,
        backoff_factor=0.5,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=None,  # S3 PUTs of whole objects are idempotent
        raise_on_status=False,
    )
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=10, read=300),
        retries=retry,
        maxsize=16,
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


def client() -> Minio:
    """The S3 client for the current ``MINIO_*`` environment (cached per settings)."""
    return _client_for(S3Settings.from_env())


def _describe(e: Exception, uri: str) -> Exception:
    """Turn SDK and network errors into errors that name the setting to fix."""
    if isinstance(e, S3Error):
        if e.code == "NoSuchBucket":
            return ConfigError(f"bucket of {uri} does not exist (check the input/output URI)")
        if e.code in _CREDENTIAL_ERRORS:
            return ConfigError(
                f"the S3 endpoint refused the credentials for {uri} ({e.code}): "
                "check MINIO_ACCESS_KEY and MINIO_SECRET_KEY"
            )
        if e.code in ("NoSuchKey", "NoSuchObject"):
            return FileNotFoundError(f"no object {uri}")
        return StorageError(f"S3 error on {uri}: {e.code}: {e.message}")
    if isinstance(e, urllib3.exceptions.HTTPError):
        endpoint = os.environ.get("MINIO_ENDPOINT", "?")
        return StorageError(
            f"S3 endpoint MINIO_ENDPOINT={endpoint} unreachable or failing for {uri} "
            f"after retries: {type(e).__name__}"
        )
    return e


def _s3_call(uri: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (S3Error, urllib3.exceptions.HTTPError) as e:
        raise _describe(e, uri) from e
    except ValueError as e:  # the SDK refuses keys with "." or ".." segments
        raise UnsafeKeyError(f"object key of {uri} is refused: {e}") from e


def check_bucket(uri: str) -> None:
    """Raise :class:`ConfigError` naming the URI when its bucket does not exist."""
    bucket, _ = split_s3_uri(uri)
    if not _s3_call(uri, client().bucket_exists, bucket):
        raise ConfigError(f"bucket {bucket!r} of {uri} does not exist")


@dataclass(frozen=True)
class Unreadable:
    """An entry of a local input folder that is no readable file, and why it is left out."""

    uri: str
    reason: str


def _walk_local(root: Path) -> tuple[list[tuple[Path, os.stat_result]], list[Unreadable]]:
    """The files under ``root`` (symlinks to files included, under the link's own path) and
    the entries that are not read: symlinks to folders (never followed, so no loop and no
    second copy of a tree), broken symlinks, other special files, unreadable folders and
    paths that are not valid UTF-8 (named here with U+FFFD for the undecodable bytes)."""
    files: list[tuple[Path, os.stat_result]] = []
    unreadable: list[Unreadable] = []

    def refused(error: OSError) -> None:
        reason = f"unreadable: {error.strerror}"
        unreadable.append(Unreadable(os.path.abspath(error.filename), reason))

    for folder, dirs, names in os.walk(root, onerror=refused):
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                link = os.path.abspath(os.path.join(folder, name))
                unreadable.append(Unreadable(link, "symlink to a folder (not followed)"))
        for name in names:
            path = Path(os.path.abspath(os.path.join(folder, name)))
            printable = _utf8(str(path)).decode("utf-8", "replace")
            if printable != str(path):  # records and shard items are JSON text
                unreadable.append(Unreadable(printable, "the path is not valid UTF-8"))
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                unreadable.append(Unreadable(str(path), "broken symlink (its target is missing)"))
                continue
            except OSError as e:
                unreadable.append(Unreadable(str(path), f"unreadable: {e.strerror}"))
                continue
            if stat.S_ISREG(info.st_mode):
                files.append((path, info))
            else:
                unreadable.append(Unreadable(str(path), "not a regular file"))
    return files, unreadable


def list_input(prefix_uri: str) -> tuple[list[ObjectInfo], list[Unreadable]]:
    """Every object under an input prefix (S3) or file under a folder (local), sorted by key,
    and the local entries that are not read (see :func:`_walk_local`; none on S3).

    A local file is named by its own path, a symlink by the link's path (never the target's).
    """
    if is_remote(prefix_uri):
        return list(list_objects(prefix_uri)), []
    root = _local(prefix_uri)
    if root.is_file():
        found, unreadable = [(Path(os.path.abspath(root)), root.stat())], []
    elif root.is_dir():
        found, unreadable = _walk_local(root)
    else:
        raise ConfigError(f"input {prefix_uri} does not exist")
    objects = [
        ObjectInfo(str(path), info.st_size, f"{info.st_size}-{info.st_mtime_ns}")
        for path, info in sorted(found, key=lambda f: str(f[0]))
    ]
    return objects, sorted(unreadable, key=lambda u: u.uri)


def list_objects(prefix_uri: str) -> Iterator[ObjectInfo]:
    """Every object under a prefix (S3) or every file under a folder (local), sorted by key."""
    if not is_remote(prefix_uri):
        yield from list_input(prefix_uri)[0]
        return
    bucket, prefix = split_s3_uri(prefix_uri)
    check_bucket(prefix_uri)
    objects = _s3_call(
        prefix_uri, lambda: list(client().list_objects(bucket, prefix=prefix, recursive=True))
    )
    for obj in sorted(objects, key=lambda o: o.object_name):
        if not obj.is_dir:
            yield ObjectInfo(
                f"s3://{bucket}/{obj.object_name}", obj.size or 0, (obj.etag or "").strip('"')
            )


def is_audio(uri: str) -> bool:
    """True when the URI's extension is one of :data:`AUDIO_EXTENSIONS`."""
    return PurePosixPath(uri).suffix.lower() in AUDIO_EXTENSIONS


def list_audio(prefix_uri: str) -> list[ObjectInfo]:
    """The objects under a prefix whose extension is an audio extension, sorted by key."""
    return [o for o in list_objects(prefix_uri) if is_audio(o.uri)]


def download(uri: str, work_dir: str | os.PathLike) -> Path:
    """A local file with the object's content, streamed to disk (never whole in memory).

    S3 objects land under ``work_dir`` at their key, each component shortened to
    :data:`DOWNLOAD_COMPONENT_BYTES` when longer (:func:`fit_key`; untrusted keys are checked
    with :func:`safe_join`); local paths are returned as they are, without a copy.
    """
    if not is_remote(uri):
        path = _local(uri)
        if not path.is_file():
            raise FileNotFoundError(f"no file {uri}")
        return path
    bucket, key = split_s3_uri(uri)
    dest = safe_join(work_dir, fit_key(key, DOWNLOAD_COMPONENT_BYTES, MAX_KEY_BYTES))
    dest.parent.mkdir(parents=True, exist_ok=True)
    _s3_call(uri, client().fget_object, bucket, key, str(dest))
    return dest


def _write_local(dest: Path, stream: BinaryIO) -> None:
    """Write ``stream`` to ``dest`` through a temporary file renamed into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=".part-", delete=False) as tmp:
        shutil.copyfileobj(stream, tmp)
    os.replace(tmp.name, dest)


def upload_file(path: str | os.PathLike, uri: str, content_type: str | None = None) -> None:
    """Copy a local file to ``uri`` (multipart above :data:`PART_SIZE`; local: atomic rename)."""
    if is_remote(uri):
        bucket, key = split_s3_uri(uri)
        _s3_call(
            uri,
            client().fput_object,
            bucket,
            key,
            str(path),
            content_type=content_type or "application/octet-stream",
            part_size=PART_SIZE,
        )
        return
    with open(path, "rb") as src:
        _write_local(_local(uri), src)


def write_stream(uri: str, stream: BinaryIO, length: int, content_type: str | None = None) -> None:
    """Write ``length`` bytes from ``stream`` to ``uri``."""
    if is_remote(uri):
        bucket, key = split_s3_uri(uri)
        _s3_call(
            uri,
            client().put_object,
            bucket,
            key,
            stream,
            length,
            content_type=content_type or "application/octet-stream",
            part_size=PART_SIZE,
        )
        return
    _write_local(_local(uri), stream)


def write_bytes(uri: str, data: bytes, content_type: str | None = None) -> None:
    """Write a small object whole (S3 PUTs are atomic; local files are renamed into place)."""
    write_stream(uri, io.BytesIO(data), len(data), content_type)


def write_text(uri: str, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
    """Write a small UTF-8 text object."""
    write_bytes(uri, text.encode("utf-8"), content_type)


def concat(sources: list[str], uri: str, content_type: str | None = None) -> None:
    """Write the concatenation of ``sources`` to ``uri``.

    S3: server-side (one ``UploadPartCopy`` per source), no byte passes through this
    process; every source but the last must hold at least 5 MiB (an S3 rule of multipart
    uploads). No sources: an empty object. Local: the files are copied into a temporary
    file that is renamed into place.
    """
    if not sources:
        write_bytes(uri, b"", content_type)
        return
    if is_remote(uri):
        from minio.commonconfig import ComposeSource

        bucket, key = split_s3_uri(uri)
        parts = [ComposeSource(*split_s3_uri(src)) for src in sources]
        metadata = {"Content-Type": content_type} if content_type else None
        _s3_call(uri, client().compose_object, bucket, key, parts, metadata=metadata)
        return
    dest = _local(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as tmp:
        for src in sources:
            with open(_local(src), "rb") as f:
                shutil.copyfileobj(f, tmp)
    os.replace(tmp.name, dest)


def read_bytes(uri: str) -> bytes:
    """The content of a small object."""
    if not is_remote(uri):
        return _local(uri).read_bytes()
    bucket, key = split_s3_uri(uri)
    response = _s3_call(uri, client().get_object, bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def read_text(uri: str) -> str:
    """The content of a small UTF-8 text object."""
    return read_bytes(uri).decode("utf-8")


def exists(uri: str) -> bool:
    """True when the object (or local file) exists."""
    if not is_remote(uri):
        return _local(uri).exists()
    bucket, key = split_s3_uri(uri)
    try:
        _s3_call(uri, client().stat_object, bucket, key)
    except FileNotFoundError:
        return False
    return True


def delete(uri: str) -> None:
    """Remove an object (or local file); a missing one is no error."""
    if not is_remote(uri):
        _local(uri).unlink(missing_ok=True)
        return
    bucket, key = split_s3_uri(uri)
    _s3_call(uri, client().remove_object, bucket, key)


def presigned_url(uri: str, expires_s: int = 3600) -> str:
    """An HTTP URL that reads the object without credentials (ffprobe reads headers this way).

    Local paths are returned as they are.
    """
    if not is_remote(uri):
        return str(_local(uri))
    bucket, key = split_s3_uri(uri)
    return _s3_call(
        uri, client().presigned_get_object, bucket, key, expires=timedelta(seconds=expires_s)
    )


def join(prefix_uri: str, *names: str) -> str:
    """Append path components to a URI or local path with single slashes."""
    base = prefix_uri.rstrip("/")
    tail = "/".join(n.strip("/") for n in names if n)
    return f"{base}/{tail}" if tail else base


def check_relative_key(key: str) -> str:
    """``key`` when it is a relative key that stays below its prefix, else :class:`UnsafeKeyError`.

    The output-side twin of :func:`safe_join`: names derived from untrusted input keys must
    not write outside the output prefix (S3) or folder (local).
    """
    parts = PurePosixPath(key.replace("\\", "/")).parts
    if not parts or key.startswith(("/", "\\")) or any(p in ("..", ".", "") for p in parts):
        raise UnsafeKeyError(f"object key {key!r} would leave the output prefix")
    return key


def child(prefix_uri: str, key: str) -> str:
    """``prefix_uri/key`` for a key derived from untrusted input (checked, see above)."""
    return join(prefix_uri, check_relative_key(key))
