"""KFP wrapper of :mod:`components.plan.planner` (no ``from __future__``: KFP reads the types)."""

from kfp.dsl import Dataset, Output

from components.common.kfp_helpers import lightweight


def plan(input_uri: str, manifest: Output[Dataset], num_shards: int = 4) -> list[list[str]]:
    """List the input audio, probe durations, split the files into duration-balanced shards.

    Args:
        input_uri: Audio to process: an s3://bucket/prefix/ or a local folder.
        num_shards: Number of shards (parallel transcribe tasks); fewer when fewer files.

    Returns:
        Output: The shards, each a list of source URIs, heaviest file first.
        manifest: JSON Lines, one object per input (source, size, etag, duration_s, shard).
    """
    from components.common.records import write_jsonl
    from components.plan.planner import PlanOptions
    from components.plan.planner import plan as make_plan

    result = make_plan(input_uri, PlanOptions(num_shards=num_shards))
    write_jsonl(manifest.path, result.files)
    return result.shards


plan_op = lightweight(plan)
