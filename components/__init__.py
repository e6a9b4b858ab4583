"""Typed KFP components of kfp-asr-summarize and the plain-Python engines they call."""
