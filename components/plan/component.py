"""KFP wrapper of :mod:`components.plan.planner` (no ``from __future__``: KFP reads the types)."""

from kfp.dsl import Dataset, Output

from components.common.kfp_helpers import lightweight


def plan(
    input_uri: str,
    manifest: Output[Dataset],
    output_uri: str = "",
    num_shards: int = 4,
    reprocess: bool = False,
) -> list[list[dict]]:
    """List the input audio, skip finished inputs, split the rest into duration-balanced shards.

    Args:
        input_uri: Audio to process: an s3://bucket/prefix/ or a local folder.
        output_uri: Output prefix whose ledger marks finished inputs; empty: no ledger.
        num_shards: Number of shards (parallel transcribe tasks); fewer when fewer files.
        reprocess: Process every input again, even those the ledger marks as finished.

    Returns:
        Output: The shards (at least one, possibly empty), each a list of items
            {source, name, etag, size}, heaviest file first.
        manifest: JSON Lines, one object per input (source, name, size, etag, duration_s,
            weight_s, shard, action: process or skip, step_started_at, step_finished_at).
    """
    import logging

    from components.common.records import stamped, utc_now, write_jsonl
    from components.plan.planner import PlanOptions
    from components.plan.planner import plan as make_plan

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started_at = utc_now()
    options = PlanOptions(num_shards=num_shards, reprocess=reprocess)
    result = make_plan(input_uri, options, output_uri or None)
    write_jsonl(manifest.path, stamped(result.files, started_at, utc_now()))
    return result.shard_dicts()


plan_op = lightweight(plan)
