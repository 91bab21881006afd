"""The task classifier: embedded CPU model, plus the GAIR model via vLLM or any OpenAI-compatible API."""
