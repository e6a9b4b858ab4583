"""The plan's shard lists: one JSON line per shard, read back one shard at a time.

The pipeline's loop iterates over shard indices only (a few bytes each, whatever the size of
the bucket); each transcribe and summarize task reads its own items from this file, the
``shards`` Dataset of the plan step. So no file list travels inline: not as a loop item,
not in a task's ``--executor_input`` argument (Linux caps one argument at 128 KiB), not in
the Argo Workflow object (etcd caps an object at 1.5 MB). See docs/compatibility.md.

Line ``k`` is ``{"shard": k, "items": [{source, name, etag, size}, ...]}``, heaviest item
first, as :func:`components.plan.planner.balance` placed them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from components.common.errors import ConfigError
from components.common.ledger import Item
from components.common.records import iter_jsonl, write_jsonl


def write_shards(path: str | os.PathLike, shards: Sequence[Sequence[Item]]) -> list[int]:
    """Write every shard's items to ``path``; returns the shard indices (the loop's items)."""
    write_jsonl(
        path,
        ({"shard": k, "items": [it.to_dict() for it in shard]} for k, shard in enumerate(shards)),
    )
    return list(range(len(shards)))


def read_shard(path: str | os.PathLike, index: int) -> list[Item]:
    """The items of shard ``index`` in the file ``path``, reading one line at a time.

    Raises :class:`ConfigError` when the file holds no such shard.
    """
    index = int(index)  # kfp.local may hand a loop's integer item over as a float
    for line in iter_jsonl(path):
        if line.get("shard") == index:
            return [Item.from_dict(entry) for entry in line["items"]]
    raise ConfigError(f"shard {index} is not in the plan's shard list {path}")
