"""The asr-summarize pipeline, its deployment profiles and the ``kfp-asr`` command line."""
