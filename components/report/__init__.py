"""The ``report`` step: HTML/Markdown report, KFP metrics and the export to the output URI."""
