"""The ``summarize`` step: summarize every transcript through an llm-d (OpenAI-API) endpoint."""
