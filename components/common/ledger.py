"""Incremental runs: deterministic result keys and a ledger of finished inputs.

Everything a run writes for one input lives under keys derived from the input's key
relative to the input prefix (its *name*), never from time or run id, so a retried or
repeated task overwrites instead of duplicating:

- ``<output>/transcripts/<name>.json``: the input's transcript record
- ``<output>/summaries/<name>.json``: its summary record
- ``<output>/_ledger/<name>/<etag>.json``: written LAST, once both records are ``ok`` and
  uploaded. The ETag (or size and mtime for local files) is part of the key, so a
  planner learns what is finished from one listing, and a changed object is processed again.

Names fit every store: each path component at most :data:`NAME_COMPONENT_BYTES` bytes (so
``<name>.json`` fits the 255 bytes of a local file name) and the whole name at most
:data:`NAME_BYTES` (so the keys above fit S3's 1,024 bytes under an output key prefix of up
to :data:`OUTPUT_PREFIX_BYTES`, which :func:`check_output_prefix` enforces). Longer names
are shortened deterministically (:func:`storage.fit_key`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any

from components.common import storage
from components.common.errors import ConfigError

log = logging.getLogger(__name__)

LEDGER_DIR = "_ledger"
TRANSCRIPTS_DIR = "transcripts"
SUMMARIES_DIR = "summaries"
#: ``action`` of a plan manifest line: processed by this run, finished earlier, or not an
#: audio input at all (not audio, a reference transcript, a symlink to a folder, ...).
PROCESS = "process"
SKIP = "skip"
IGNORE = "ignore"
#: Longest path component of a name: ``<name>.json`` still fits 255 bytes.
NAME_COMPONENT_BYTES = storage.MAX_COMPONENT_BYTES - len(".json")
#: Longest name: every key derived from it fits S3's 1,024 bytes under a long output prefix.
NAME_BYTES = 512
#: Longest key prefix of an S3 output: room left for ``/_ledger/<name>/<etag>.json``.
OUTPUT_PREFIX_BYTES = 448


@dataclass(frozen=True)
class Item:
    """One input object as the stages see it: where it is, its stable name and version."""

    source: str
    name: str
    etag: str
    size: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the plan hands to the stages (one shard is a list of these)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        """The item of a shard entry written by :meth:`to_dict`."""
        return cls(
            str(data["source"]), str(data["name"]), str(data["etag"]), int(data.get("size") or 0)
        )


def relative_name(source: str, input_uri: str) -> str:
    """The key of ``source`` relative to the input prefix, as a safe relative POSIX path that
    fits every store (see the module docstring).

    A name too long for a local file name or an S3 key is shortened to a prefix of it plus 16
    hex digits of a SHA-256 (:func:`storage.fit_key`). A key that cannot serve as a path as it
    is (``..`` or ``.`` components, empty segments such as ``a//b.wav``) is named by its base
    name shortened the same way with the digest of its whole URI. Either is the same in every
    run and never equals another input's name: kept names never end like shortened ones.
    """
    if storage.is_remote(source):
        _, key = storage.split_s3_uri(source)
        _, prefix = storage.split_s3_uri(input_uri) if storage.is_remote(input_uri) else ("", "")
        rel = key[len(prefix) :] if prefix and key.startswith(prefix) else key
        if prefix and not prefix.endswith("/") and rel.startswith("/"):
            rel = rel[1:]  # the separator after a prefix given without its trailing slash
    else:
        root = os.path.abspath(input_uri)
        path = os.path.abspath(source)
        rel = os.path.relpath(path, root).replace(os.sep, "/") if path != root else ""
    base = PurePosixPath(source).name
    if not rel:  # the input is this one object
        return storage.fit_component(base, NAME_COMPONENT_BYTES)
    parts = PurePosixPath(rel).parts
    if "/".join(parts) == rel and ".." not in parts:
        return storage.fit_key(rel, NAME_COMPONENT_BYTES, NAME_BYTES)
    return storage.shorten(base, NAME_COMPONENT_BYTES, digest_of=source)


def check_output_prefix(output_uri: str, setting: str = "output_uri") -> None:
    """Raise :class:`ConfigError` naming ``setting`` when an S3 output prefix leaves too
    little of the 1,024-byte key for the keys derived from names."""
    if not storage.is_remote(output_uri):
        return
    size = len(storage.split_s3_uri(output_uri)[1].encode())
    if size > OUTPUT_PREFIX_BYTES:
        raise ConfigError(
            f"{setting}: the key prefix of {output_uri[:60]}... is {size} bytes; at most "
            f"{OUTPUT_PREFIX_BYTES} leave room for result keys within S3's 1,024 bytes"
        )


def result_uri(output_uri: str, stage_dir: str, name: str) -> str:
    """Where the record of ``name`` for one stage (``transcripts``/``summaries``) is kept."""
    return storage.child(storage.join(output_uri, stage_dir), f"{name}.json")


def ledger_uri(output_uri: str, item: Item) -> str:
    """The ledger object that marks ``item`` (at its current ETag) as finished."""
    return storage.child(
        storage.join(output_uri, LEDGER_DIR), f"{item.name}/{_safe_etag(item.etag)}.json"
    )


def _safe_etag(etag: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in etag) or "none"


def finished(output_uri: str) -> set[tuple[str, str]]:
    """``(name, etag)`` pairs that the ledger under ``output_uri`` marks as finished.

    One listing of the ledger prefix; no object is read. An output prefix that does not
    exist yet has an empty ledger.
    """
    base = storage.join(output_uri, LEDGER_DIR)
    remote = storage.is_remote(base)
    try:
        objects = list(storage.list_objects(base + "/"))
    except ConfigError:
        if remote:
            raise  # a missing output bucket is a setting to fix, not an empty ledger
        return set()
    done: set[tuple[str, str]] = set()
    for obj in objects:
        name, _, leaf = _below(obj.uri, base).rpartition("/")
        if name and leaf.endswith(".json") and not leaf.startswith("."):
            done.add((name, leaf[: -len(".json")]))
    return done


def is_finished(item: Item, done: set[tuple[str, str]]) -> bool:
    """True when the ledger holds ``item`` at its current ETag."""
    return (item.name, _safe_etag(item.etag)) in done


def load_result(output_uri: str, stage_dir: str, item: Item) -> dict[str, Any] | None:
    """The stored ``ok`` record of ``item`` for a stage, if it belongs to the same ETag."""
    uri = result_uri(output_uri, stage_dir, item.name)
    try:
        record = json.loads(storage.read_text(uri))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if record.get("status") != "ok" or record.get("etag") != item.etag:
        return None
    return record


def store_result(output_uri: str, stage_dir: str, item: Item, record: dict[str, Any]) -> None:
    """Upload one stage's record of ``item`` (with its ETag) under its deterministic key."""
    payload = {**record, "etag": item.etag}
    storage.write_text(
        result_uri(output_uri, stage_dir, item.name),
        json.dumps(payload, ensure_ascii=False),
        "application/json",
    )


def mark_finished(output_uri: str, item: Item) -> None:
    """Write the ledger object of ``item``; call only after its records are uploaded.

    Entries of the same name at other ETags are removed afterwards: the stored records now
    belong to this version, so an object changed back to an old version is processed again.
    Entries of other names below this one (``a.wav`` and ``a.wav/b.wav`` on S3) are kept.
    """
    entry = {
        "source": item.source,
        "name": item.name,
        "etag": item.etag,
        "size": item.size,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    current = ledger_uri(output_uri, item)
    storage.write_text(current, json.dumps(entry), "application/json")
    folder, _, leaf = current.rpartition("/")
    for obj in storage.list_objects(folder + "/"):
        rest = _below(obj.uri, folder)
        if rest != leaf and "/" not in rest:  # deeper keys belong to names below this one
            storage.delete(obj.uri)


def _below(uri: str, base: str) -> str:
    """The part of a listed ``uri`` below the prefix or folder ``base``, with ``/``."""
    if storage.is_remote(base):
        return uri[len(base.rstrip("/")) + 1 :]
    return os.path.relpath(uri, os.path.abspath(base)).replace(os.sep, "/")


def load_results(
    output_uri: str, stage_dir: str, items: list[Item], workers: int = 16
) -> list[dict[str, Any] | None]:
    """:func:`load_result` for many items, in parallel, in input order."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda it: load_result(output_uri, stage_dir, it), items))
