"""Model mode: an OpenAI-compatible chat model behind the openai client (see docs/models.md)."""
