"""The cumulative catalogue under the output prefix: every input's latest records, as JSON
Lines and as a Parquet dataset, updated at a cost that grows with the new inputs.

After every run the output prefix holds one transcript and one summary record per input
that has records (``ok`` or ``failed`` with its reason; the latest version of a changed
input):

- ``transcripts.jsonl`` and ``summaries.jsonl``
- ``catalog/transcripts/part-NNNNNN.parquet`` and ``catalog/summaries/part-NNNNNN.parquet``:
  the same records as Parquet datasets (``segments`` a list of structs) that DuckDB, Spark or
  Trino read in place, e.g. ``SELECT * FROM 's3://bucket/out/catalog/transcripts/*.parquet'``

The Parquet schema follows the record dataclasses (:func:`schema_of`: scalars, lists and
nested dataclasses; a field of another type stays in the JSON Lines only). Each record
carries the catalogue columns ``name`` (the key relative to the input prefix),
``etag`` (the version it was made from) and ``run`` (the run that made it; empty for records
restored from the per-input objects).

**Layout and cost.** Each table is a sequence of parts; every part is a Parquet file plus a
JSON Lines twin (``catalog/_jsonl/<table>/part-NNNNNN.jsonl``), and ``<table>.jsonl`` is the
concatenation of the twins, put together by the S3 server (:func:`storage.concat`, no byte
passes through the report step). All parts but the last are *sealed* (at least
:attr:`CatalogueOptions.part_bytes` of JSON Lines); new records go to the last part, the
*tail*, which is rewritten and seals itself when it reaches that size. A small index
(``catalog/_index/<table>.parquet``: source, part, status, duration) says which part holds
an input. An update therefore reads and writes the tail, the new records and the index (a
few bytes per input), plus any sealed part holding an input that changed or left; it never
reads the other parts. A sealed part that shrinks below the S3 multipart minimum (5 MiB) is
merged into the tail (compaction).

**Inputs deleted from the bucket** leave the catalogue in the first run whose plan no longer
lists them: the catalogue mirrors the input prefix. Their per-input records
(``transcripts/<name>.json``, ``summaries/<name>.json``) and ledger entries stay, so an
object that comes back at the same version is restored to the catalogue from them without
being processed again; the same restores inputs finished by runs from before the catalogue
existed, once.

One run at a time per output prefix (schedule with ``max_concurrency=1``). A reader of the
Parquet dataset during an update can see an input twice, never lose one; an update cut off
half way is completed by the next one (parts the index does not name are removed first).
"""

from __future__ import annotations

import io
import json
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from components.common import ledger, storage
from components.common.ledger import SUMMARIES_DIR, TRANSCRIPTS_DIR, Item
from components.common.records import OK, SummaryRecord, TranscriptRecord

CATALOGUE_DIR = "catalog"
#: The S3 minimum size of every multipart-upload part but the last.
MIN_COMPOSE_BYTES = 5 * 1024 * 1024
#: Columns every catalogue record gets besides the stage's own fields.
CATALOGUE_COLUMNS = {"name": pa.string(), "etag": pa.string(), "run": pa.string()}
_SCALARS = {str: pa.string(), float: pa.float64(), int: pa.int64(), bool: pa.bool_()}


@dataclass(frozen=True)
class CatalogueOptions:
    """How the catalogue is laid out."""

    #: JSON Lines bytes at which the tail part is sealed (at least 5 MiB on S3).
    part_bytes: int = 8 * 1024 * 1024
    #: Per-input records read at once when inputs are restored.
    workers: int = 16


@dataclass(frozen=True)
class TableUpdate:
    """What one update did to one table, and its size afterwards."""

    records: int
    ok: int
    added: int
    replaced: int
    removed: int
    restored: int
    parts: int
    parts_written: int
    audio_seconds: float


def _columns(record_type: type) -> list[tuple[str, pa.DataType]]:
    hints = typing.get_type_hints(record_type)
    columns = [(f.name, _arrow_type(hints[f.name])) for f in fields(record_type)]
    return [(name, kind) for name, kind in columns if kind is not None]


def _arrow_type(hint: Any) -> pa.DataType | None:
    """Arrow type of a record field: scalars, ``X | None``, lists, dataclasses as structs;
    ``None`` for other types (such a field stays in the JSON Lines only)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        item = _arrow_type(args[0]) if len(args) == 1 else None
        return None if item is None else pa.list_(item)
    if len(args) == 1:  # X | None
        return _arrow_type(args[0])
    if is_dataclass(hint):
        return pa.struct(_columns(hint))
    return _SCALARS.get(hint)


def schema_of(record_type: type) -> pa.Schema:
    """The Parquet schema of a record dataclass plus the catalogue columns."""
    return pa.schema(_columns(record_type) + list(CATALOGUE_COLUMNS.items()))


SCHEMAS = {"transcripts": schema_of(TranscriptRecord), "summaries": schema_of(SummaryRecord)}
_INDEX_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("part", pa.int64()),
        ("status", pa.string()),
        ("duration_s", pa.float64()),
    ]
)


@dataclass
class _Entry:
    part: int
    status: str | None
    duration_s: float | None


class _Table:
    """The objects of one table under ``<output>/catalog``."""

    def __init__(self, output_uri: str, name: str) -> None:
        self.name = name
        self.root = storage.join(output_uri, CATALOGUE_DIR)
        self.jsonl = storage.join(output_uri, f"{name}.jsonl")

    def parquet(self, part: int) -> str:
        return storage.join(self.root, self.name, f"part-{part:06d}.parquet")

    def twin(self, part: int) -> str:
        return storage.join(self.root, "_jsonl", self.name, f"part-{part:06d}.jsonl")

    @property
    def index(self) -> str:
        return storage.join(self.root, "_index", f"{self.name}.parquet")

    def twin_sizes(self) -> dict[int, int]:
        """Part number → JSON Lines bytes, from one listing of the twins."""
        folder = storage.join(self.root, "_jsonl", self.name)
        if not storage.is_remote(folder) and not storage.exists(folder):
            return {}
        sizes = {}
        for obj in storage.list_objects(folder + "/"):
            leaf = obj.uri.replace("\\", "/").rpartition("/")[2]
            if leaf.startswith("part-") and leaf.endswith(".jsonl"):
                sizes[int(leaf[len("part-") : -len(".jsonl")])] = obj.size
        return sizes

    def read_index(self) -> dict[str, _Entry]:
        try:
            data = storage.read_bytes(self.index)
        except FileNotFoundError:
            return {}
        rows = pq.read_table(io.BytesIO(data)).to_pylist()
        return {r["source"]: _Entry(r["part"], r["status"], r["duration_s"]) for r in rows}

    def write_index(self, index: dict[str, _Entry]) -> None:
        rows = [
            {"source": s, "part": e.part, "status": e.status, "duration_s": e.duration_s}
            for s, e in index.items()
        ]
        storage.write_bytes(self.index, _parquet(rows, _INDEX_SCHEMA), "application/parquet")

    def read_part(self, part: int) -> list[str]:
        return storage.read_text(self.twin(part)).splitlines(keepends=True)

    def write_part(self, part: int, lines: Sequence[str]) -> None:
        rows = [json.loads(line) for line in lines]
        data = _parquet(rows, SCHEMAS[self.name])
        storage.write_bytes(self.parquet(part), data, "application/parquet")
        storage.write_text(self.twin(part), "".join(lines), "application/x-ndjson")

    def delete_part(self, part: int) -> None:
        storage.delete(self.parquet(part))
        storage.delete(self.twin(part))


def _parquet(rows: list[dict[str, Any]], schema: pa.Schema) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
    return buf.getvalue()


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False) + "\n"


def _source(line: str) -> str:
    return json.loads(line)["source"]


def _chunks(lines: Iterable[str], part_bytes: int) -> list[list[str]]:
    """Lines in order, cut after the line that brings a chunk to ``part_bytes`` or more."""
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        chunks[-1].append(line)
        size += len(line.encode("utf-8"))
        if size >= part_bytes:
            chunks.append([])
            size = 0
    return [c for c in chunks if c]


def update_table(
    output_uri: str,
    name: str,
    delta: Sequence[dict[str, Any]],
    present: set[str] | None,
    restore: Callable[[list[str]], list[dict[str, Any]]],
    options: CatalogueOptions,
) -> TableUpdate:
    """Put ``delta`` (one record per input, latest last) into table ``name``.

    Args:
        output_uri: The output prefix (s3:// or a local folder).
        name: ``transcripts`` or ``summaries``.
        delta: This run's records, with the catalogue columns.
        present: Every source the input prefix holds now; catalogue inputs outside it are
            removed. ``None``: nothing is removed.
        restore: Given present sources that the catalogue lacks and ``delta`` does not
            bring, returns the records it can find for them.
        options: Part size.

    Returns:
        What the update did, and the table's size afterwards.
    """
    table = _Table(output_uri, name)
    remote = storage.is_remote(output_uri)
    part_bytes = max(options.part_bytes, MIN_COMPOSE_BYTES) if remote else options.part_bytes
    keep_bytes = min(part_bytes, MIN_COMPOSE_BYTES)
    index = table.read_index()
    sizes = table.twin_sizes()
    referenced = {e.part for e in index.values()}
    for part in set(sizes) - referenced:  # left by an update that was cut off
        table.delete_part(part)
        del sizes[part]
    index = {s: e for s, e in index.items() if e.part in sizes}
    before = set(index)

    latest = {r["source"]: r for r in delta}
    missing = [s for s in sorted(present or ()) if s not in index and s not in latest]
    restored = restore(missing) if missing else []
    latest |= {r["source"]: r for r in restored}
    removed = {s for s in index if present is not None and s not in present}
    drop = set(latest) | removed

    parts = sorted(sizes)
    tail = parts[-1] if parts and sizes[parts[-1]] < part_bytes else None
    moved: list[str] = []
    rewritten: dict[int, list[str]] = {}
    emptied: list[int] = []
    for part in sorted({index[s].part for s in drop if s in index} - {tail}):
        kept = [line for line in table.read_part(part) if _source(line) not in drop]
        if sum(len(line.encode("utf-8")) for line in kept) >= keep_bytes:
            rewritten[part] = kept
        else:
            moved += kept
            emptied.append(part)
    tail_lines = table.read_part(tail) if tail is not None and drop else []
    kept = [line for line in tail_lines if _source(line) not in drop]
    if moved or latest or len(kept) < len(tail_lines):  # else the tail stays as it is
        first = tail if tail is not None else (parts[-1] + 1 if parts else 1)
        chunks = _chunks([*kept, *moved, *map(_line, latest.values())], part_bytes)
        rewritten |= {first + i: chunk for i, chunk in enumerate(chunks)}
        if tail is not None and not chunks:
            emptied.append(tail)

    for part, lines in rewritten.items():
        table.write_part(part, lines)
    for source in drop:
        index.pop(source, None)
    for part, lines in rewritten.items():
        for record in map(json.loads, lines):
            index[record["source"]] = _Entry(part, record.get("status"), record.get("duration_s"))
    if rewritten or emptied or removed:
        table.write_index(index)
    for part in emptied:
        table.delete_part(part)
        sizes.pop(part, None)
    final = sorted(set(sizes) - set(emptied) | set(rewritten))
    storage.concat([table.twin(p) for p in final], table.jsonl, "application/x-ndjson")

    fresh = {r["source"] for r in delta}
    return TableUpdate(
        records=len(index),
        ok=sum(1 for e in index.values() if e.status == OK),
        added=len(fresh - before),
        replaced=len(fresh & before),
        removed=len(removed),
        restored=len(restored),
        parts=len(final),
        parts_written=len(rewritten),
        audio_seconds=round(sum(e.duration_s or 0.0 for e in index.values() if e.status == OK), 3),
    )


def with_columns(
    records: Iterable[dict[str, Any]], items: dict[str, dict[str, Any]], run: str
) -> list[dict[str, Any]]:
    """Records with the catalogue columns ``name``, ``etag`` (from the plan's items) and ``run``."""
    return [
        {
            **r,
            "name": items[r["source"]]["name"],
            "etag": items[r["source"]]["etag"],
            "run": run,
        }
        for r in records
    ]


def update_catalogue(
    output_uri: str,
    manifest: Sequence[dict[str, Any]],
    transcripts: Sequence[dict[str, Any]],
    summaries: Sequence[dict[str, Any]],
    run: str,
    options: CatalogueOptions,
) -> dict[str, TableUpdate]:
    """Merge this run's records into the catalogue under ``output_uri`` (see the module doc).

    Args:
        output_uri: The output prefix.
        manifest: The plan's manifest: every input under the input prefix now (each with
            ``source``, ``name``, ``etag``), processed or skipped.
        transcripts: This run's transcript records (of the processed inputs).
        summaries: This run's summary records.
        run: The run's id, kept in each new record's ``run`` column.
        options: Part size and read parallelism.

    Returns:
        Per table (``transcripts``, ``summaries``), what the update did.
    """
    items = {m["source"]: m for m in manifest}

    def restorer(stage_dir: str) -> Callable[[list[str]], list[dict[str, Any]]]:
        def restore(sources: list[str]) -> list[dict[str, Any]]:
            wanted = [Item.from_dict(items[s]) for s in sources]
            found = ledger.load_results(output_uri, stage_dir, wanted, options.workers)
            return with_columns([r for r in found if r is not None], items, "")

        return restore

    present = set(items)
    return {
        "transcripts": update_table(
            output_uri,
            "transcripts",
            with_columns(transcripts, items, run),
            present,
            restorer(TRANSCRIPTS_DIR),
            options,
        ),
        "summaries": update_table(
            output_uri,
            "summaries",
            with_columns(summaries, items, run),
            present,
            restorer(SUMMARIES_DIR),
            options,
        ),
    }
