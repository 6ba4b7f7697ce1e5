"""Report-writing engines: the offline extractive engine (default) and, later, OpenAI-compatible models."""
